"""Points the Vertex AI SDK at a project and region, or at a local stand-in endpoint."""

from __future__ import annotations

from pipeline.config import VertexRunnerConfig

AUTH_HINT = (
    "no Google Cloud credentials found: run `gcloud auth application-default login`, "
    "or in CI authenticate with Workload Identity Federation (google-github-actions/auth)"
)


def init_vertex(runner: VertexRunnerConfig, api_endpoint: str | None = None) -> None:
    """`aiplatform.init` for the runner's project and region, over the SDK's REST transport.

    Without `api_endpoint`: Google's regional endpoint and Application Default Credentials. With
    it (e.g. http://127.0.0.1:8765, a stand-in from tools/standins): that endpoint and anonymous
    credentials. REST rather than the SDK's gRPC default: the same API, and the transport the
    rehearsal's Vertex AI stand-in serves (docs/vertex.md).
    """
    from google.cloud import aiplatform

    settings: dict = {"project": runner.project, "location": runner.region, "api_transport": "rest"}
    if api_endpoint:
        from google.auth.credentials import AnonymousCredentials

        settings.update(api_endpoint=api_endpoint, credentials=AnonymousCredentials())
    aiplatform.init(**settings)


def credential_errors() -> tuple[type[Exception], ...]:
    """Exceptions meaning 'not authenticated' (missing or expired credentials)."""
    from google.auth import exceptions

    return (exceptions.DefaultCredentialsError, exceptions.RefreshError)
