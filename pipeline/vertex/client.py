"""Points the Vertex AI SDK at a project and region, or at a local stand-in endpoint."""

from __future__ import annotations

from pipeline.config import VertexRunnerConfig

AUTH_HINT = (
    "no Google Cloud credentials found: run `gcloud auth application-default login`, "
    "or in CI authenticate with Workload Identity Federation (google-github-actions/auth)"
)


def init_vertex(runner: VertexRunnerConfig, api_endpoint: str | None = None) -> None:
    """`aiplatform.init` for the runner's project and region.

    With `api_endpoint` (e.g. http://127.0.0.1:8765, the fake server in tools/standins) the REST
    transport and anonymous credentials are used; without it, Application Default Credentials.
    """
    from google.cloud import aiplatform

    settings: dict = {"project": runner.project, "location": runner.region}
    if api_endpoint:
        from google.auth.credentials import AnonymousCredentials

        settings.update(api_endpoint=api_endpoint, api_transport="rest", credentials=AnonymousCredentials())
    aiplatform.init(**settings)


def credential_errors() -> tuple[type[Exception], ...]:
    """Exceptions meaning 'not authenticated' (missing or expired credentials)."""
    from google.auth import exceptions

    return (exceptions.DefaultCredentialsError, exceptions.RefreshError)
