"""A loopback gRPC server for stand-ins of Google APIs that clients call over gRPC.

Handlers are plain functions ``(request_pb, context) -> response_pb`` registered per service
(``google.cloud.aiplatform.v1.JobService``...) with the protobuf classes of the real API, so the
real gapic clients talk to them unchanged. A handler raises ``vertex_core.ApiError`` to refuse a
call, as the REST surfaces do; the error becomes the matching gRPC status, with the error's
``details`` (protobuf messages such as ``google.rpc.BadRequest``) in the rich status that
``google.api_core`` reads into ``exception.details``.

The server is insecure (plaintext HTTP/2): tests connect with ``grpc.insecure_channel(target)``,
and the rehearsal's TLS-terminating proxy forwards ``h2`` connections to it as h2c.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_status import rpc_status

from tools.standins.vertex_core import ApiError, error_body

_LOGGER = logging.getLogger(__name__)

UnaryHandler = Callable[[Any, grpc.ServicerContext], Message]


def unary_method(
    handler: UnaryHandler, request_type: type[Message], response_type: type[Message]
) -> grpc.RpcMethodHandler:
    """A unary-unary method: ``handler`` gets the parsed request, returns the response message."""

    def serve(request: Message, context: grpc.ServicerContext) -> Message:
        try:
            return handler(request, context)
        except ApiError as error:
            context.abort_with_status(rpc_status.to_status(status_of(error)))
        except Exception:  # a stand-in bug: answer INTERNAL and keep the traceback visible
            _LOGGER.error("gRPC stand-in handler failed:\n%s", traceback.format_exc())
            context.abort(grpc.StatusCode.INTERNAL, "Stand-in bug, see the server log.")
        raise AssertionError("unreachable: abort raises")

    return grpc.unary_unary_rpc_method_handler(
        serve,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


def service(name: str, methods: Mapping[str, grpc.RpcMethodHandler]) -> grpc.GenericRpcHandler:
    """Handlers for the fully qualified service ``name``; other methods answer UNIMPLEMENTED."""
    return grpc.method_handlers_generic_handler(name, dict(methods))


def status_of(error: ApiError) -> status_pb2.Status:
    """``google.rpc.Status`` for an ``ApiError`` (its status name, else the one of its HTTP status)."""
    name = error.status or error_body(error.http_status, error.message)["error"]["status"]
    code = grpc.StatusCode[name] if name in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
    status = status_pb2.Status(code=code.value[0], message=error.message)
    for detail in getattr(error, "details", ()):
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status


class GrpcServer:
    """An insecure gRPC server on ``host`` (port 0 picks a free one); a context manager."""

    def __init__(
        self,
        handlers: Iterable[grpc.GenericRpcHandler],
        host: str = "127.0.0.1",
        port: int = 0,
        max_workers: int = 8,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._handlers = tuple(handlers)
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._port: int | None = None

    def start(self) -> GrpcServer:
        if self._server is not None:
            return self
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="grpc-standin")
        )
        server.add_generic_rpc_handlers(self._handlers)
        self._port = server.add_insecure_port(f"{self.host}:{self._requested_port}")
        if self._port == 0:
            raise OSError(f"gRPC stand-in could not bind {self.host}:{self._requested_port}")
        server.start()
        self._server = server
        return self

    def stop(self, grace_seconds: float = 1.0) -> None:
        if self._server is not None:
            self._server.stop(grace_seconds).wait()
            self._server = None

    def __enter__(self) -> GrpcServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("GrpcServer is not running.")
        return self._port

    @property
    def target(self) -> str:
        """``host:port`` for ``grpc.insecure_channel``."""
        return f"{self.host}:{self.port}"
