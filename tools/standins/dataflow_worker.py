"""The Dataflow worker stand-in: Beam's container boot program and SDK harness in one process.

`tools/standins/dataflow.py` starts it in the job's SDK container image (through the
`ContainerRuntime`) as the job's worker service account. What it does follows the real worker:

1. boot (`/opt/apache/beam/boot`): read the pipeline options the service hands over
   (PIPELINE_OPTIONS, the job's `sdkPipelineOptions`), download every artifact the pipeline's
   environments declare from the staging location into SEMI_PERSISTENT_DIRECTORY/staged, checking
   the sha256 Beam recorded, and refuse to go on when the job staged packages that boot would
   `pip install` (the rehearsal installs nothing into the image: bake them into the image);
2. SDK harness setup (`sdk_worker_main.create_harness`): runtime value providers, file systems and
   pickler configured from the options, the pickled main session loaded when one was staged, the
   `beam_plugins` imported;
3. instead of the Dataflow runner harness feeding bundles over the Fn API, the staged runner API
   pipeline (`pipelineUrl`, read with the worker's own credentials as the service reads it with the
   worker service account) runs on Beam's FnApiRunner. Every DOCKER environment of this container's
   image becomes the embedded Python environment, so the user code runs in this process, i.e. in
   the image: a module the image lacks fails here as it does on Dataflow.

On failure the traceback goes to DATAFLOW_WORKER_ERROR_FILE (read by the service stand-in for its
job messages, as Dataflow relays SDK harness errors) and the exit code is 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger("dataflow_worker")

# Staged files that boot installs with pip (sdks/python/container/boot.go, installSetupPackages).
PIP_INSTALLED_ARTIFACTS = ("dataflow_python_sdk.tar", "requirements.txt", "extra_packages.txt", "workflow.tar.gz")


class WorkerSetupError(Exception):
    """The worker could not prepare the pipeline's environment (boot's log.Fatalf cases)."""


def pipeline_options_from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The options dict as `sdk_worker_main._load_pipeline_options` reads PIPELINE_OPTIONS."""
    raw = environ.get("PIPELINE_OPTIONS")
    if not raw:
        raise WorkerSetupError("Failed to obtain provisioning information: PIPELINE_OPTIONS is not set")
    options = json.loads(raw)
    return dict(options.get("options", options))


def read_pipeline(pipeline_url: str) -> Any:
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.portability.api import beam_runner_api_pb2

    with FileSystems.open(pipeline_url) as staged:
        return beam_runner_api_pb2.Pipeline.FromString(staged.read())


def materialize_artifacts(pipeline: Any, staged_dir: Path) -> list[str]:
    """Downloads the environments' URL artifacts into `staged_dir`; returns the staged names."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    staged_dir.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for environment in pipeline.components.environments.values():
        for dependency in environment.dependencies:
            if dependency.type_urn != common_urns.artifact_types.URL.urn:
                raise WorkerSetupError(
                    f"Failed to retrieve staged files: artifact type {dependency.type_urn} is not a staged URL"
                )
            payload = beam_runner_api_pb2.ArtifactUrlPayload.FromString(dependency.type_payload)
            if dependency.role_urn == common_urns.artifact_roles.STAGING_TO.urn:
                name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dependency.role_payload).staged_name
            else:
                name = payload.url.rsplit("/", 1)[-1]
            with FileSystems.open(payload.url) as source:
                content = source.read()
            if payload.sha256 and hashlib.sha256(content).hexdigest() != payload.sha256:
                raise WorkerSetupError(f"Failed to retrieve staged files: sha256 mismatch for {payload.url}")
            (staged_dir / name).write_bytes(content)
            _LOGGER.info("Found artifact: %s", name)
            names.append(name)
    to_install = sorted(set(names) & set(PIP_INSTALLED_ARTIFACTS))
    if to_install:
        raise WorkerSetupError(
            f"Failed to install required packages: the job staged {', '.join(to_install)}, which the SDK container's "
            "boot program installs with pip at worker start-up. The rehearsal worker installs nothing into the "
            "image (and workers without public IPs usually cannot reach PyPI either): install these dependencies "
            "in the SDK container image instead."
        )
    return names


def embed_image_environments(pipeline: Any, image: str) -> list[str]:
    """Turns every DOCKER environment of `image` into the embedded Python one; returns their ids.

    A DOCKER environment of another image (a cross-language transform's SDK) would need a second
    container: this worker cannot run it and says so.
    """
    from apache_beam.portability import common_urns, python_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    embedded: list[str] = []
    for environment_id, environment in pipeline.components.environments.items():
        if environment.urn != common_urns.environments.DOCKER.urn:
            raise WorkerSetupError(f"environment {environment_id} is {environment.urn}, not a DOCKER environment")
        container_image = beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image
        if container_image != image:
            raise WorkerSetupError(
                f"environment {environment_id} needs SDK container {container_image}; the rehearsal worker runs "
                f"only the job's image {image}"
            )
        environment.urn = python_urns.EMBEDDED_PYTHON
        environment.payload = b""
        embedded.append(environment_id)
    return embedded


def configure_harness(options_dict: dict[str, Any]) -> Any:
    """What `sdk_worker_main.create_harness` sets up from the options before anything else."""
    from apache_beam.internal import pickler
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions
    from apache_beam.options.value_provider import RuntimeValueProvider

    RuntimeValueProvider.set_runtime_options(options_dict)
    options = PipelineOptions.from_dictionary(options_dict)
    FileSystems.set_options(options)
    pickler.set_library(options.view_as(SetupOptions).pickle_library)
    return options


def load_user_session(options: Any, semi_persistent_dir: Path) -> None:
    """The pickled main session (from the staged artifacts) and the beam_plugins, as the harness loads them."""
    from apache_beam.internal import pickler
    from apache_beam.options.pipeline_options import SetupOptions
    from apache_beam.runners.worker import sdk_worker_main

    setup = options.view_as(SetupOptions)
    if setup.pickle_library != pickler.USE_CLOUDPICKLE:
        sdk_worker_main._load_main_session(str(semi_persistent_dir))
    sdk_worker_main._import_beam_plugins(setup.beam_plugins or [])


def run(environ: Mapping[str, str]) -> None:
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    options_dict = pipeline_options_from_environment(environ)
    semi_persistent_dir = Path(environ.get("SEMI_PERSISTENT_DIRECTORY", "/tmp"))
    image = environ.get("DATAFLOW_WORKER_IMAGE") or options_dict.get("sdk_container_image", "")
    pipeline_url = options_dict.get("pipelineUrl")
    if not pipeline_url:
        raise WorkerSetupError("Failed to obtain provisioning information: the job options carry no pipelineUrl")

    options = configure_harness(options_dict)
    _LOGGER.info("Reading the pipeline from %s", pipeline_url)
    pipeline = read_pipeline(pipeline_url)
    materialize_artifacts(pipeline, semi_persistent_dir / "staged")
    load_user_session(options, semi_persistent_dir)
    embedded = embed_image_environments(pipeline, image)
    transforms = pipeline.components.transforms.values()
    packed = sum(1 for transform in transforms if transform.unique_name.split("/")[-1].startswith("Packed["))
    _LOGGER.info(
        "Running %d transforms (%d combiners packed by DataflowRunner's pre-optimisation) of environment(s) %s "
        "in process",
        len(transforms),
        packed,
        embedded,
    )
    started = time.monotonic()
    result = FnApiRunner().run_via_runner_api(pipeline, options)
    result.wait_until_finish()
    _LOGGER.info("Pipeline finished in %.1f s: %s", time.monotonic() - started, result.state)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    # Every PipelineOptions.from_dictionary of the job's options warns about pipelineUrl and the store_false
    # flags (as on Dataflow's workers); it would fill the log tail the job messages carry.
    logging.getLogger("apache_beam.options.pipeline_options").setLevel(logging.ERROR)
    error_file = os.environ.get("DATAFLOW_WORKER_ERROR_FILE")
    try:
        run(os.environ)
    except BaseException as error:  # every failure is the job's: reported, then the exit code says so
        details = traceback.format_exc()
        _LOGGER.error("Worker failed: %s", error)
        sys.stderr.write(details)
        if error_file:
            Path(error_file).write_text(details)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
