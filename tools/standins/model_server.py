"""The serving container of Vertex AI's prebuilt TensorFlow images, as a local program.

``python -m tools.standins.model_server`` behaves as Vertex AI's ``tf2-cpu`` prediction container:
TensorFlow Serving (its REST API, ``tf_serving_rest.py``) behind the routes Vertex AI gives the
container. It reads the environment Vertex AI sets (custom container requirements):

- ``AIP_STORAGE_URI``: the ``gs://`` folder holding ``saved_model.pb`` and ``variables/`` (or
  numbered version folders, as TF Serving's ``--model_base_path``), downloaded with
  google-cloud-storage's default client (which honours ``STORAGE_EMULATOR_HOST`` and the proxy
  settings); a local folder works too;
- ``AIP_HTTP_PORT`` (default 8080), ``AIP_HEALTH_ROUTE`` and ``AIP_PREDICT_ROUTE``.

It serves ``GET`` on the health route (200 with TF Serving's model status once the model is
loaded; the port is opened only then), ``POST`` on the predict route, and TF Serving's own
``/v1/models/NAME[/versions/N|/labels/L][:predict|/metadata]`` routes. When the model cannot be
downloaded or loaded, it logs one ``ERROR`` line saying why and exits with status 1, which Vertex
AI reports as a failed deployment.

The model is loaded with ``tf.saved_model.load`` (tags ``serve``) and its signatures read from
``saved_model.pb``, as TF Serving reads the SignatureDefs. A signature is called with the
request's tensors as they are: like TF Serving's session, nothing checks their shapes against the
signature, the model's ops do. Only ``predict`` is served (no ``classify``/``regress``).

The server listens on 127.0.0.1: a container's network namespace is the loopback here.
``register_tf_serving_image`` makes a ``ContainerRuntime`` know an image reference whose
entrypoint runs this program.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from tools.standins import tf_serving_rest as rest
from tools.standins.containers import ContainerRuntime, LocalImage, stand_in_programs

LOG = logging.getLogger("model_server")
DEFAULT_PORT = 8080
DEFAULT_MODEL_NAME = "default"

# http_rest_api_util.cc: kPredictionApiGegex and kModelStatusApiRegex.
_PREDICT_PATH = re.compile(
    r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r":(?P<method>classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/(?P<name>[^/:]+))?(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?(?:/(?P<sub>metadata))?",
    re.IGNORECASE,
)
_GRAPH_ERROR_PREAMBLE = re.compile(
    r"^Graph execution error:\n\nDetected at node [^\n]*? defined at \(most recent call last\):\n"
    r"(?:<stack traces unavailable>\n)?"
)
_OP_SUFFIX = re.compile(r" \[Op:[^\]]*\]$")


class ModelLoadError(Exception):
    """The model cannot be served; the message says why."""


class ServedModel:
    """One loaded SavedModel version and the TF Serving operations on it."""

    def __init__(self, name: str, version: int, folder: Path) -> None:
        import tensorflow as tf
        from tensorflow.core.framework import types_pb2
        from tensorflow.core.protobuf import saved_model_pb2

        self.name = name
        self.version = version
        self._tf = tf
        self._dtype_name: Callable[[int], str] = types_pb2.DataType.Name
        saved_model = saved_model_pb2.SavedModel()
        try:
            saved_model.ParseFromString((folder / "saved_model.pb").read_bytes())
            meta_graph = next(m for m in saved_model.meta_graphs if "serve" in m.meta_info_def.tags)
        except (OSError, StopIteration, ValueError) as error:
            raise ModelLoadError(f"{folder}: no SavedModel MetaGraph with tags {{ serve }} ({error})") from None
        self.signature_defs = dict(meta_graph.signature_def)
        self.signatures = {
            key: rest.Signature(
                inputs={alias: self._dtype_name(info.dtype) for alias, info in signature.inputs.items()},
                outputs={alias: self._dtype_name(info.dtype) for alias, info in signature.outputs.items()},
            )
            for key, signature in self.signature_defs.items()
        }
        try:
            loaded = tf.saved_model.load(str(folder), tags=["serve"])
        except Exception as error:  # any load failure: the model cannot be served
            raise ModelLoadError(f"{folder}: tf.saved_model.load failed: {error}") from None
        self._loaded = loaded  # keeps the variables the signatures capture alive
        self._functions = dict(loaded.signatures)

    def predict(self, body: bytes) -> bytes:
        """TF Serving's ``ProcessPredictRequest``; raises :class:`rest.ServingError`."""
        request = rest.parse_predict_request(body, self.signatures)
        name = request.signature_name or rest.DEFAULT_SIGNATURE
        function = self._functions.get(name)
        if function is None:
            raise rest.ServingError("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        tf = self._tf
        dtypes = {alias: tf.dtypes.as_dtype(info.dtype) for alias, info in self.signature_defs[name].inputs.items()}
        try:
            outputs = function(**{alias: tf.constant(a, dtypes[alias]) for alias, a in request.numpy_inputs().items()})
        except tf.errors.OpError as error:
            code = rest.STATUS_NAMES.get(error.error_code, "UNKNOWN")
            raise rest.ServingError(code, kernel_message(error.message)) from None
        except (TypeError, ValueError) as error:
            raise rest.ServingError("INVALID_ARGUMENT", str(error)) from None
        except Exception as error:  # the server answers every failure with a status
            raise rest.ServingError("UNKNOWN", f"{type(error).__name__}: {error}") from None
        tensors = {alias: (self._dtype_name(t.dtype.as_datatype_enum), t.numpy()) for alias, t in outputs.items()}
        return rest.predict_response(tensors, columnar=request.columnar)

    def status(self) -> dict[str, Any]:
        """``GetModelStatusResponse`` as TF Serving prints it."""
        return {
            "model_version_status": [
                {
                    "version": str(self.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def metadata(self) -> dict[str, Any]:
        """``GetModelMetadataResponse`` (signature_def only, as TF Serving)."""
        from google.protobuf import json_format

        signature_defs = {
            key: json_format.MessageToDict(signature, preserving_proto_field_name=True)
            for key, signature in self.signature_defs.items()
        }
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
            "metadata": {
                "signature_def": {
                    "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap",
                    "signature_def": signature_defs,
                }
            },
        }

    def check_servable(self, name: str, version: str | None, label: str | None) -> None:
        """``GetServableHandle``: only this model's name and version exist."""
        if name != self.name or (version is not None and int(version) != self.version) or label is not None:
            request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise rest.ServingError("NOT_FOUND", f"Servable not found for request: {request}")


def kernel_message(message: str) -> str:
    """The status message of the failing op, without the Python eager runtime's additions
    (TF Serving reports the C++ status, which has neither)."""
    return _OP_SUFFIX.sub("", _GRAPH_ERROR_PREAMBLE.sub("", message))


# -- model files ---------------------------------------------------------------------------------


def load_model(base_path: str, name: str, scratch: Path) -> ServedModel:
    """Downloads (for ``gs://``) and loads the SavedModel at ``base_path``."""
    folder = download(base_path, scratch) if base_path.startswith("gs://") else Path(base_path)
    version_folder, version = _version_folder(folder, base_path)
    return ServedModel(name, version, version_folder)


def download(uri: str, destination: Path) -> Path:
    """Copies every object under the ``gs://`` folder ``uri`` into ``destination``."""
    from google.api_core import exceptions
    from google.cloud import storage

    bucket_name, _, prefix = uri.removeprefix("gs://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    try:
        client = storage.Client()
        blobs = [blob for blob in client.list_blobs(bucket_name, prefix=prefix) if not blob.name.endswith("/")]
        for blob in blobs:
            target = destination / blob.name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
    except exceptions.GoogleAPICallError as error:
        raise ModelLoadError(f"cannot read {uri}: {error}") from None
    if not blobs:
        raise ModelLoadError(f"{uri} holds no files")
    LOG.info("Downloaded %d files from %s", len(blobs), uri)
    return destination


def _version_folder(folder: Path, base_path: str) -> tuple[Path, int]:
    """The SavedModel itself (version 1), or TF Serving's newest numbered version folder."""
    if (folder / "saved_model.pb").is_file():
        return folder, 1
    versions = sorted(
        (int(child.name), child)
        for child in folder.glob("*")
        if child.name.isdigit() and (child / "saved_model.pb").is_file()
    )
    if not versions:
        raise ModelLoadError(f"{base_path} holds no saved_model.pb (nor numbered version folders with one)")
    version, path = versions[-1]
    return path, version


# -- HTTP ----------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: _ModelHTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._respond(*self.server.dispatch("GET", self.path.split("?")[0], b""))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._respond(*self.server.dispatch("POST", self.path.split("?")[0], body))

    def _respond(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        LOG.debug("%s %s", self.address_string(), fmt % args)


class _ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, model: ServedModel, health_route: str, predict_route: str) -> None:
        self.model = model
        self.health_route = health_route
        self.predict_route = predict_route
        super().__init__(("127.0.0.1", port), _Handler)

    def dispatch(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            return 200, self._serve(method, path, body)
        except rest.ServingError as error:
            if error.http_status >= 500 or method == "POST":
                LOG.info("%s %s: %s", method, path, error.status_string())
            return error.http_status, error.body()

    def _serve(self, method: str, path: str, body: bytes) -> bytes:
        model = self.model
        if method == "GET" and path == self.health_route:
            return _json(model.status())
        if method == "POST" and path == self.predict_route:
            return model.predict(body)
        if not path.lower().startswith("/v1/"):
            raise rest.ServingError("NOT_FOUND", f"No route for {method} {path}")
        if method == "POST" and (match := _PREDICT_PATH.fullmatch(path)):
            model.check_servable(match["name"], match["version"], match["label"])
            if match["method"].lower() != "predict":
                raise rest.ServingError("UNIMPLEMENTED", f"The stand-in serves predict only, not {match['method']}")
            return model.predict(body)
        if method == "GET" and (match := _STATUS_PATH.fullmatch(path)):
            if not match["name"]:
                raise rest.invalid_argument("Missing model name in request.")
            if match["sub"]:
                model.check_servable(match["name"], match["version"], match["label"])
                return _json(model.metadata())
            if match["name"] != model.name:
                raise rest.ServingError("NOT_FOUND", f"Could not find any versions of model {match['name']}")
            if match["version"] is not None and int(match["version"]) != model.version:
                raise rest.ServingError("NOT_FOUND", f"Could not find version {match['version']} of model {model.name}")
            return _json(model.status())
        raise rest.invalid_argument(f"Malformed request: {method} {path}")


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1).encode()


# -- entry point ---------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_name", default=DEFAULT_MODEL_NAME, help="TF Serving's --model_name")
    parser.add_argument(
        "--model_base_path", default=os.environ.get("AIP_STORAGE_URI", ""), help="default: $AIP_STORAGE_URI"
    )
    parser.add_argument(
        "--rest_api_port", type=int, default=int(os.environ.get("AIP_HTTP_PORT") or DEFAULT_PORT), help="$AIP_HTTP_PORT"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s model_server: %(message)s"
    )
    args = _parse_args(argv)
    health_route = os.environ.get("AIP_HEALTH_ROUTE") or f"/v1/models/{args.model_name}"
    predict_route = os.environ.get("AIP_PREDICT_ROUTE") or f"/v1/models/{args.model_name}:predict"
    if not args.model_base_path:
        LOG.error("No model to serve: AIP_STORAGE_URI is not set (nor --model_base_path)")
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="model-server-"))
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        LOG.info("Loading model %s from %s", args.model_name, args.model_base_path)
        try:
            model = load_model(args.model_base_path, args.model_name, scratch)
        except ModelLoadError as error:
            LOG.error("Failed to load model %s: %s", args.model_name, error)
            return 1
        server = _ModelHTTPServer(args.rest_api_port, model, health_route, predict_route)
        LOG.info(
            "Serving model %s version %d (signatures: %s) at http://127.0.0.1:%d: health GET %s, predict POST %s",
            model.name,
            model.version,
            ", ".join(sorted(key for key in model.signatures if not key.startswith("__"))),
            args.rest_api_port,
            health_route,
            predict_route,
        )
        try:
            server.serve_forever(poll_interval=0.2)
        except SystemExit:  # SIGTERM (`docker stop`): a clean stop
            LOG.info("Stopped")
        finally:
            server.server_close()
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


# -- the image stand-in --------------------------------------------------------------------------


def register_tf_serving_image(runtime: ContainerRuntime, reference: str, state_dir: Path) -> LocalImage:
    """Makes ``runtime`` run this server for containers of image ``reference`` (e.g. Google's
    ``us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest``)."""
    workdir = state_dir / "tf-serving-image"
    workdir.mkdir(parents=True, exist_ok=True)
    image = LocalImage(
        workdir=workdir,
        env={"PYTHONPATH": str(stand_in_programs(state_dir))},
        entrypoint=("python", "-m", "tools.standins.model_server"),
    )
    runtime.add_image(reference, image)
    return image


if __name__ == "__main__":
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    os._exit(status)  # skips TensorFlow's slow interpreter teardown (~2 s): a stopped server exits at once
