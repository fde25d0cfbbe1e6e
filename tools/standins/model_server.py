"""The serving containers of TensorFlow models on Vertex AI, as local programs.

Two images are emulated (``register_tf_serving_image(..., container=...)``); both serve the real
SavedModel with TensorFlow Serving's REST API (``tf_serving_rest.py``: the rules of TF Serving
2.15.1 and 2.16.1, whose REST code is the same).

``container="tf-serving"``: the ``tensorflow/serving`` image (2.16.1), run as a Vertex AI custom
container. Its ``tensorflow_model_server`` is on PATH and behaves as the binary does
(``model_servers/main.cc``, ``server.cc``, ``server_core.cc`` and
``sources/storage_path/file_system_storage_path_source.cc`` at tag 2.16.1):

- flags only as ``--name=value`` (``--name`` alone for a bool); a flag it does not know is printed
  as ``unknown argument: ...`` and ignored, a value that does not parse stops it with the usage
  (status 255); ``--rest_api_port`` defaults to 0, which exports no REST API at all;
- it reads nothing of Vertex AI's environment: what it serves comes from ``--model_name`` and
  ``--model_base_path`` (which Vertex AI fills in from ``$(AIP_STORAGE_URI)``), on
  ``--rest_api_port``, at TF Serving's own routes only;
- ``--model_base_path`` holds numbered version folders; the highest number is loaded (the
  ``latest`` version policy). Without one it logs TF Serving's warning ("No versions of servable
  ... Did you forget to name your leaf directory as a number (eg. '/1/')?"), or its error for a
  base path that does not exist, every ``--file_system_poll_wait_seconds`` (default 1; 0 polls
  once), and keeps waiting without opening its port, as TF Serving does: a deployment of it never
  becomes healthy. A version that cannot be loaded stops it with "Failed to start server. Error:
  UNKNOWN: 1 model(s) did not become available: ..." (status 255) at once, where TF Serving first
  retries the load ``--max_num_load_retries`` times a minute apart;
- gRPC (``--port``) is not served, and ``--model_config_file`` is refused.

The image's own ENTRYPOINT (``tf_serving_entrypoint.sh``: ``tensorflow_model_server --port=8500
--rest_api_port=8501 --model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME}``)
runs when a container spec gives no command.

``container="prebuilt"``: Google's prebuilt ``tf2-cpu`` prediction images, whose entrypoint
(``python -m tools.standins.model_server``) reads the environment Vertex AI sets:

- ``AIP_STORAGE_URI``: the ``gs://`` folder holding ``saved_model.pb`` and ``variables/`` (or
  numbered version folders), downloaded with google-cloud-storage's default client (which honours
  ``STORAGE_EMULATOR_HOST`` and the proxy settings); a local folder works too;
- ``AIP_HTTP_PORT`` (default 8080), ``AIP_HEALTH_ROUTE`` and ``AIP_PREDICT_ROUTE``.

It serves ``GET`` on the health route (200 with TF Serving's model status once the model is
loaded; the port is opened only then), ``POST`` on the predict route, and TF Serving's own
``/v1/models/NAME[/versions/N|/labels/L][:predict|/metadata]`` routes. When the model cannot be
downloaded or loaded, it logs one ``ERROR`` line saying why and exits with status 1, which Vertex
AI reports as a failed deployment.

In both, the model is loaded with ``tf.saved_model.load`` (tags ``serve``) and its signatures read
from ``saved_model.pb``, as TF Serving reads the SignatureDefs. A signature is called with the
request's tensors as they are: like TF Serving's session, nothing checks their shapes against the
signature, the model's ops do. Only ``predict`` is served (no ``classify``/``regress``). The
servers listen on 127.0.0.1: a container's network namespace is the loopback here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Literal, NoReturn

from tools.standins import tf_serving_rest as rest
from tools.standins.containers import VENV_BIN, ContainerRuntime, LocalImage, stand_in_programs

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
    """TF Serving's REST routes, and Vertex AI's health and predict routes when given (the prebuilt
    image serves AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE; tensorflow_model_server knows neither)."""

    daemon_threads = True

    def __init__(self, port: int, model: ServedModel, health_route: str | None, predict_route: str | None) -> None:
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


# -- tensorflow_model_server (the tensorflow/serving image) ----------------------------------------

TF_SERVING_RELEASE = "2.16.1"
# Flags of model_servers/main.cc at 2.16.1 by the type they parse as. The stand-in acts on those of
# ModelServerFlags and accepts the others without acting on them (batching, threads, warmup, ...).
_INT_FLAGS = frozenset(
    "port rest_api_port rest_api_num_threads rest_api_timeout_in_ms model_config_file_poll_wait_seconds "
    "num_load_threads num_unload_threads max_num_load_retries file_system_poll_wait_seconds "
    "tensorflow_session_parallelism tensorflow_intra_op_parallelism tensorflow_inter_op_parallelism "
    "grpc_max_threads num_request_iterations_for_warmup num_tflite_pools num_tflite_interpreters_per_pool "
    "load_retry_interval_micros".split()
)
_BOOL_FLAGS = frozenset(
    "rest_api_enable_cors_support enable_batching allow_version_labels_for_unavailable_models "
    "enable_per_model_batching_parameters flush_filesystem_caches use_alts_credentials enable_model_warmup "
    "version remove_unused_fields_from_bundle_metagraph prefer_tflite_model enable_signature_method_name_check "
    "xla_cpu_compilation_enabled enable_profiler skip_initialize_tpu enable_grpc_healthcheck_service".split()
)
_FLOAT_FLAGS = frozenset({"per_process_gpu_memory_fraction"})
_STRING_FLAGS = frozenset(
    "grpc_socket_path batching_parameters_file model_config_file model_name model_base_path "
    "tensorflow_session_config_file ssl_config_file platform_config_file saved_model_tags "
    "grpc_channel_arguments monitoring_config_file thread_pool_factory_config_file mixed_precision".split()
)
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_INT64_RANGE = (-(2**63), 2**63 - 1)
_INT32_RANGE = (-(2**31), 2**31 - 1)


class FlagError(Exception):
    """A flag value tensorflow::Flags::Parse cannot interpret (the server prints its usage, exits 255)."""


@dataclass
class ModelServerFlags:
    """What tensorflow_model_server's flags say, with its defaults (server.h, main.cc)."""

    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    port: int = 8500
    rest_api_port: int = 0
    file_system_poll_wait_seconds: int = 1
    version: bool = False
    unknown: list[str] = field(default_factory=list)


def parse_model_server_flags(argv: Sequence[str]) -> ModelServerFlags:
    """tensorflow::Flags::Parse: ``--name=value``, or ``--name`` for a bool; anything else is left
    unparsed (``unknown``). Raises :class:`FlagError` for a known flag whose value does not parse."""
    flags = ModelServerFlags()
    for arg in argv:
        name, has_value, value = arg.removeprefix("--").partition("=")
        parsed: object
        if not arg.startswith("--") or name not in _INT_FLAGS | _BOOL_FLAGS | _FLOAT_FLAGS | _STRING_FLAGS:
            flags.unknown.append(arg)
            continue
        if name in _BOOL_FLAGS:
            if has_value and value not in {"true", "false", "1", "0"}:
                raise FlagError(f"Couldn't interpret value {value} for flag {name}.")
            parsed = not has_value or value in {"true", "1"}
        elif not has_value:  # `--port 8080`: not a flag it recognises
            flags.unknown.append(arg)
            continue
        elif name in _INT_FLAGS:
            low, high = _INT64_RANGE if name == "load_retry_interval_micros" else _INT32_RANGE
            if not _INTEGER.fullmatch(value) or not low <= int(value) <= high:
                raise FlagError(f"Couldn't interpret value {value} for flag {name}.")
            parsed = int(value)
        elif name in _FLOAT_FLAGS:
            try:
                parsed = float(value)
            except ValueError:
                raise FlagError(f"Couldn't interpret value {value} for flag {name}.") from None
        else:
            parsed = value
        if name in ModelServerFlags.__dataclass_fields__ and name != "unknown":
            setattr(flags, name, parsed)
    return flags


def _usage() -> str:
    names = sorted(_INT_FLAGS | _BOOL_FLAGS | _FLOAT_FLAGS | _STRING_FLAGS)
    return "usage: tensorflow_model_server\nFlags:\n" + "".join(f"\t--{name}\n" for name in names)


def tf_log(severity: Literal["I", "W", "E"], source: str, message: str) -> None:
    """One line as TF Serving's logging writes it, to stderr:
    ``2024-05-16 20:18:07.668928: W tensorflow_serving/...cc:257] message``."""
    sys.stderr.write(f"{dt.datetime.now():%Y-%m-%d %H:%M:%S.%f}: {severity} tensorflow_serving/{source}] {message}\n")
    sys.stderr.flush()


class BasePathNotFound(Exception):
    """FileSystemStoragePathSource: the base path does not exist (message: the file system's status)."""


def version_children(base_path: str) -> list[str]:
    """The direct children of ``base_path`` (GetChildren; on GCS every object below counts through
    its first path component, and the path exists when any object is below it)."""
    if not base_path.startswith("gs://"):
        try:
            return os.listdir(base_path)
        except OSError as error:
            raise BasePathNotFound(f"NOT_FOUND: {base_path}; {error.strerror}") from None
    from google.api_core import exceptions
    from google.cloud import storage

    bucket, _, prefix = base_path.removeprefix("gs://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    try:
        names = [blob.name[len(prefix) :] for blob in storage.Client().list_blobs(bucket, prefix=prefix)]
    except exceptions.NotFound:
        names = []
    except exceptions.GoogleAPICallError as error:  # TF Serving logs it and polls again
        status = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}.get(error.code or 0, "UNAVAILABLE")
        raise BasePathNotFound(f"{status}: {error.message}") from None
    if not names:
        raise BasePathNotFound(f"NOT_FOUND: The specified path {base_path} was not found.")
    return sorted({name.split("/", 1)[0] for name in names if name})


def latest_version(children: Sequence[str]) -> tuple[int, str] | None:
    """The ``latest`` version policy: the child with the highest number (safe_strto64), if any."""
    versions = {}
    for child in children:
        if _INTEGER.fullmatch(child) and _INT64_RANGE[0] <= int(child) <= _INT64_RANGE[1]:
            versions[int(child)] = child
    if not versions:
        return None
    highest = max(versions)
    return highest, versions[highest]


def wait_for_version(flags: ModelServerFlags) -> tuple[int, str]:
    """Polls the base path as FileSystemStoragePathSource does until a version appears; returns
    (version, its folder). With ``--file_system_poll_wait_seconds`` <= 0 it polls (at most) once
    and then waits for ever, as TF Serving then does."""
    name, base_path = flags.model_name, flags.model_base_path.rstrip("/")
    polled = False
    while True:
        if not polled or flags.file_system_poll_wait_seconds > 0:
            polled = True
            try:
                found = latest_version(version_children(base_path))
            except BasePathNotFound as error:
                tf_log(
                    "E",
                    "sources/storage_path/file_system_storage_path_source.cc:358",
                    "FileSystemStoragePathSource encountered a filesystem access error: Could not find base path "
                    f"{base_path} for servable {name} with error {error}",
                )
            else:
                if found is not None:
                    return found[0], f"{base_path}/{found[1]}"
                tf_log(
                    "W",
                    "sources/storage_path/file_system_storage_path_source.cc:257",
                    f"No versions of servable {name} found under base path {base_path}. "
                    "Did you forget to name your leaf directory as a number (eg. '/1/')?",
                )
        time.sleep(max(flags.file_system_poll_wait_seconds, 1))


def load_version(name: str, version: int, folder: str, scratch: Path) -> ServedModel:
    """Loads one version folder (downloading a gs:// one); ModelLoadError with TF's status text."""
    local = scratch / str(version)
    if folder.startswith("gs://"):
        try:
            download(folder, local)
        except ModelLoadError:
            local.mkdir(parents=True, exist_ok=True)  # nothing readable: no SavedModel either
    else:
        local = Path(folder)
    if not (local / "saved_model.pb").is_file():
        raise ModelLoadError(
            f"NOT_FOUND: Could not find SavedModel .pb or .pbtxt at supplied export directory path: {folder}. "
            "Check that the directory exists and that you have the right permissions for accessing it."
        )
    return ServedModel(name, version, local)


def tensorflow_model_server(argv: Sequence[str]) -> int:
    """``tensorflow_model_server ARGS``: the exit status (255 for TF Serving's -1)."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    try:
        flags = parse_model_server_flags(argv)
    except FlagError as error:
        tf_log("E", "core/util/command_line_flags.cc", str(error))  # TensorFlow's flag parser
        print(_usage(), flush=True)
        return 255
    for arg in flags.unknown:
        print(f"unknown argument: {arg}\n{_usage()}", flush=True)
    if flags.version:
        print(f"TensorFlow ModelServer: {TF_SERVING_RELEASE}\nTensorFlow Library: {TF_SERVING_RELEASE}", flush=True)
        return 0
    if flags.model_config_file:
        print("Failed to start server. Error: UNIMPLEMENTED: the stand-in serves --model_base_path only", flush=True)
        return 255
    if not flags.model_base_path:
        print(
            "Failed to start server. Error: INVALID_ARGUMENT: Both server_options.model_base_path and "
            "server_options.model_config_file are empty!",
            flush=True,
        )
        return 255
    signal.signal(signal.SIGTERM, _exit_on_signal)
    scratch = Path(tempfile.mkdtemp(prefix="tensorflow-model-server-"))
    try:
        return _serve_model(flags, scratch)
    except SystemExit:  # SIGTERM
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _serve_model(flags: ModelServerFlags, scratch: Path) -> int:
    name = flags.model_name
    tf_log(
        "I",
        "model_servers/server.cc:77",
        f"Building single TensorFlow model file config:  model_name: {name} model_base_path: {flags.model_base_path}",
    )
    tf_log("I", "model_servers/server_core.cc:600", f" (Re-)adding model: {name}")
    version, folder = wait_for_version(flags)
    try:
        model = load_version(name, version, folder, scratch)
    except ModelLoadError as error:
        print(
            "Failed to start server. Error: UNKNOWN: 1 model(s) did not become available: "
            f"{{{{name: {name} version: {version}}} due to error: {error}}}, }}",
            flush=True,
        )
        return 255
    tf_log(
        "I", "core/loader_harness.cc:97", f"Successfully loaded servable version {{name: {name} version: {version}}}"
    )
    if flags.rest_api_port == 0:
        signal.pause()  # gRPC only, which the stand-in does not serve
        return 0
    if flags.rest_api_port == flags.port:
        tf_log(
            "E",
            "model_servers/server.cc:449",
            "server_options.http_port cannot be same as grpc_port. Please use a different port for HTTP/REST API. "
            "Skipped exporting HTTP/REST API.",
        )
        signal.pause()
        return 0
    server = _ModelHTTPServer(flags.rest_api_port, model, None, None)
    tf_log("I", "model_servers/server.cc:444", f"Exporting HTTP/REST API at:localhost:{flags.rest_api_port} ...")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


def run_tensorflow_model_server() -> NoReturn:
    """The stand-in image's ``tensorflow_model_server`` executable."""
    status = tensorflow_model_server(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


# -- the image stand-in --------------------------------------------------------------------------


# What tensorflow/serving's Dockerfile sets (tensorflow_serving/tools/docker/Dockerfile at 2.16.1).
_TF_SERVING_ENTRYPOINT = """#!/bin/sh
exec tensorflow_model_server --port=8500 --rest_api_port=8501 \\
  --model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} "$@"
"""
_TF_MODEL_SERVER = """#!/bin/sh
exec python -c 'from tools.standins.model_server import run_tensorflow_model_server; run_tensorflow_model_server()' "$@"
"""


def register_tf_serving_image(
    runtime: ContainerRuntime,
    reference: str,
    state_dir: Path,
    *,
    container: Literal["prebuilt", "tf-serving"] = "prebuilt",
) -> LocalImage:
    """Makes ``runtime`` know image ``reference`` as a TensorFlow serving image (module doc):
    ``prebuilt``, Google's prebuilt prediction image (e.g.
    ``us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest``); ``tf-serving``, the
    ``tensorflow/serving`` image (e.g. its mirror ``REGION-docker.pkg.dev/PROJECT/dockerhub/
    tensorflow/serving@sha256:...``), with ``tensorflow_model_server`` on PATH."""
    programs = str(stand_in_programs(state_dir))
    if container == "prebuilt":
        workdir = state_dir / "tf-serving-image"
        workdir.mkdir(parents=True, exist_ok=True)
        image = LocalImage(
            workdir=workdir, env={"PYTHONPATH": programs}, entrypoint=("python", "-m", "tools.standins.model_server")
        )
    else:
        workdir = state_dir / "tensorflow-serving-image"
        bin_dir = workdir / "usr" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for script, text in (
            ("tf_serving_entrypoint.sh", _TF_SERVING_ENTRYPOINT),
            ("tensorflow_model_server", _TF_MODEL_SERVER),
        ):
            (bin_dir / script).write_text(text)
            (bin_dir / script).chmod(0o755)
        image = LocalImage(
            workdir=workdir,
            env={"PYTHONPATH": programs, "MODEL_BASE_PATH": "/models", "MODEL_NAME": "model"},
            path_prefix=(bin_dir, VENV_BIN),
            entrypoint=("tf_serving_entrypoint.sh",),
        )
    runtime.add_image(reference, image)
    return image


if __name__ == "__main__":
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    os._exit(status)  # skips TensorFlow's slow interpreter teardown (~2 s): a stopped server exits at once
