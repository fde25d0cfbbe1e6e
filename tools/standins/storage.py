"""`StorageServer`: a Cloud Storage stand-in speaking the JSON API and the XML API's object reads.

One plain HTTP/1.1 server on a loopback port serves what real clients send to GCS:

* JSON API (`/storage/v1/...`): buckets get/insert/list/patch/delete; objects get (metadata or
  `alt=media`), list (prefix, delimiter, pageToken, maxResults, startOffset, endOffset, matchGlob,
  includeTrailingDelimiter), patch/update, delete, copyTo, rewriteTo, compose;
* media (`/download/storage/v1/...`), uploads (`/upload/storage/v1/...`: `uploadType=media`,
  `multipart`, `resumable` with chunked PUTs, 308 + `Range`, status queries `bytes */N`, cancel);
* batch (`/batch/storage/v1`, multipart/mixed, which google-cloud-storage and Beam's gcsio use);
* XML API reads (`GET|HEAD /BUCKET/OBJECT` with `Range` -> 206), as TensorFlow's gs:// file system reads,
  on every host except www.googleapis.com (which has no XML API).

It is reached through the rehearsal proxy as https://www.googleapis.com and
https://storage.googleapis.com (links in responses then name those hosts) or directly as
`STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT` (links then point back at that address). Generations,
preconditions, checksums and error bodies follow GCS (see storage_model.py). Each request is recorded
with the identity of its bearer token (looked up in the `TokenRegistry`), and `require_auth=True`
answers requests without a known token with 401 as GCS does.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

from tools.standins.http_service import LoopbackHttpServer
from tools.standins.metadata import TokenRegistry, derived_project_number
from tools.standins.storage_model import (
    JsonDict,
    ListQuery,
    Preconditions,
    StorageError,
    StorageState,
    StoredObject,
    http_date,
    invalid,
    required,
)

PUBLIC_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
MAX_BATCH_PARTS = 100
_UPLOAD_REQUIREMENT = "Upload requests must include an uploadType URL parameter and a URL-encoded object name."

Handler = Callable[["ApiRequest"], "ApiResponse"]


@dataclass(frozen=True)
class ApiRequest:
    method: str
    host: str
    path: str  # raw (percent-encoded) path, without the query
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    identity: str | None
    has_credentials: bool


@dataclass
class ApiResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reason: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in answered (batch parts are recorded too, with `in_batch`)."""

    method: str
    host: str
    path: str
    query: Mapping[str, str]
    status: int
    identity: str | None
    in_batch: bool = False


@dataclass(frozen=True)
class _Route:
    handler: Handler
    permission: str | None  # the IAM permission GCS would check, for 401 texts
    xml: bool = False


class StorageServer:
    """In-memory GCS on a loopback port; seed it directly with `create_bucket` / `put_object`."""

    def __init__(
        self,
        tokens: TokenRegistry | None = None,
        *,
        project_number: Callable[[str], str] = derived_project_number,
        require_auth: bool = False,
        port: int = 0,
    ) -> None:
        self.state = StorageState()
        self.tokens = tokens or TokenRegistry()
        self.require_auth = require_auth
        self._project_number = project_number
        self._log: list[RecordedRequest] = []
        self._log_lock = threading.Lock()
        self._http = LoopbackHttpServer(_StorageHandler, self, port=port)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self._http.address

    @property
    def url(self) -> str:
        """Value for STORAGE_EMULATOR_HOST."""
        return self._http.url

    def start(self) -> StorageServer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> StorageServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- seeding and inspection without HTTP ------------------------------------------------------

    def create_bucket(self, name: str, project: str = "test-project", location: str = "US") -> None:
        self.state.create_bucket(name, self._project_number(project), location=location)

    def put_object(
        self,
        bucket: str,
        name: str,
        data: bytes | str,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> StoredObject:
        payload = data.encode() if isinstance(data, str) else data
        fields: dict[str, Any] = {"contentType": content_type, "metadata": dict(metadata) if metadata else None}
        return self.state.insert_object(bucket, name, payload, fields)

    def get_object(self, bucket: str, name: str) -> bytes:
        """The bytes of an object (StorageError 404 when it does not exist)."""
        return self.state.get_object(bucket, name).data

    def has_object(self, bucket: str, name: str) -> bool:
        return self.state.find_object(bucket, name) is not None

    def delete_object(self, bucket: str, name: str) -> None:
        self.state.delete_object(bucket, name)

    def object_names(self, bucket: str, prefix: str = "") -> list[str]:
        page = self.state.list_objects(bucket, ListQuery(prefix=prefix, max_results=10**9))
        return [item.name for item in page.items]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    # -- the API ----------------------------------------------------------------------------------

    def handle(self, request: ApiRequest, *, in_batch: bool = False) -> ApiResponse:
        xml = False
        try:
            route = self._route(request)
            xml = route.xml
            self._authorize(request, route.permission)
            response = route.handler(request)
        except StorageError as error:
            response = _xml_error(error) if xml else _json_error(error)
        except Exception as error:  # a stand-in bug: answer like a GCS backend error, keep serving
            failure = StorageError(500, f"Internal Error: {type(error).__name__}: {error}", "backendError")
            response = _xml_error(failure) if xml else _json_error(failure)
        if request.method == "HEAD":
            response.headers.append(("Content-Length", str(len(response.body))))
            response.body = b""
        record = RecordedRequest(
            request.method,
            request.host,
            request.path,
            dict(request.query),
            response.status,
            request.identity,
            in_batch,
        )
        with self._log_lock:
            self._log.append(record)
        return response

    def _authorize(self, request: ApiRequest, permission: str | None) -> None:
        if not self.require_auth or permission is None or request.identity is not None:
            return
        if request.has_credentials:
            raise StorageError(
                401,
                "Invalid Credentials",
                "authError",
                "AuthenticationRequired",
                location="Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
            )
        kind = "bucket" if ".buckets." in permission else "object"
        message = (
            f"Anonymous caller does not have {permission} access to the Google Cloud Storage {kind}. "
            f"Permission '{permission}' denied on resource (or it may not exist)."
        )
        raise StorageError(401, message, "required", "AccessDenied", location="Authorization")

    def _route(self, request: ApiRequest) -> _Route:
        path, method = request.path, request.method
        if path in ("/batch", "/batch/storage/v1"):
            if method != "POST":
                raise _not_found_path()
            return _Route(self._batch, None)
        for prefix, kind in (("/upload/storage/v1/", "upload"), ("/download/storage/v1/", "download")):
            if path.startswith(prefix):
                return self._json_route(kind, method, path[len(prefix) :].split("/"))
        if path.startswith("/storage/v1/"):
            return self._json_route("json", method, path[len("/storage/v1/") :].split("/"))
        if request.host == "www.googleapis.com":
            raise _not_found_path()
        return self._xml_route(request)

    def _json_route(self, kind: str, method: str, segments: list[str]) -> _Route:
        if not segments or segments[0] != "b":
            raise _not_found_path()
        if len(segments) == 1 and kind == "json":
            if method == "GET":
                return _Route(self._list_buckets, "storage.buckets.list")
            if method == "POST":
                return _Route(self._insert_bucket, "storage.buckets.create")
            raise _method_not_allowed()
        bucket = unquote(segments[1])
        if len(segments) == 2 and kind == "json":
            handlers = {
                "GET": (self._get_bucket, "storage.buckets.get"),
                "PATCH": (self._patch_bucket, "storage.buckets.update"),
                "PUT": (self._patch_bucket, "storage.buckets.update"),
                "DELETE": (self._delete_bucket, "storage.buckets.delete"),
            }
            return self._pick(handlers, method, bucket)
        if len(segments) < 3 or segments[2] != "o":
            raise StorageError(501, "This API is not implemented by the Cloud Storage stand-in.", "notImplemented")
        rest = segments[3:]
        if kind == "upload":
            if rest:
                raise _not_found_path()
            return self._pick(
                {
                    "POST": (self._upload, "storage.objects.create"),
                    "PUT": (self._upload, "storage.objects.create"),
                    "DELETE": (self._upload, "storage.objects.create"),
                },
                method,
                bucket,
            )
        if not rest or rest == [""]:
            if kind == "json" and method == "GET":
                return _Route(lambda r: self._list_objects(r, bucket), "storage.objects.list")
            if method == "POST":
                raise required(_UPLOAD_REQUIREMENT)
            raise _method_not_allowed()
        copy = _copy_target(rest)
        if copy is not None and method == "POST":
            source, target_bucket, target_name, rewrite = copy
            return _Route(
                lambda r: self._copy(r, bucket, source, target_bucket, target_name, rewrite=rewrite),
                "storage.objects.create",
            )
        if rest[-1] == "compose" and len(rest) >= 2 and method == "POST":
            name = unquote("/".join(rest[:-1]))
            return _Route(lambda r: self._compose(r, bucket, name), "storage.objects.create")
        name = unquote("/".join(rest))
        if kind == "download":
            if method not in ("GET", "HEAD"):
                raise _method_not_allowed()
            return _Route(lambda r: self._download(r, bucket, name), "storage.objects.get")
        handlers = {
            "GET": (lambda r: self._get_object(r, bucket, name), "storage.objects.get"),
            "PATCH": (lambda r: self._update_object(r, bucket, name, replace_all=False), "storage.objects.update"),
            "PUT": (lambda r: self._update_object(r, bucket, name, replace_all=True), "storage.objects.update"),
            "DELETE": (lambda r: self._delete_object(r, bucket, name), "storage.objects.delete"),
        }
        if method not in handlers:
            raise _method_not_allowed()
        handler, permission = handlers[method]
        return _Route(handler, permission)

    def _pick(self, handlers: Mapping[str, tuple[Any, str]], method: str, bucket: str) -> _Route:
        if method not in handlers:
            raise _method_not_allowed()
        handler, permission = handlers[method]
        return _Route(lambda r: handler(r, bucket), permission)

    def _xml_route(self, request: ApiRequest) -> _Route:
        bucket, _, raw_name = request.path.lstrip("/").partition("/")
        name = unquote(raw_name)
        if request.method not in ("GET", "HEAD") or not bucket or not name:
            message = "The Cloud Storage stand-in serves only object reads on the XML API."
            return _Route(lambda r: _raise(StorageError(501, message, "notImplemented", "NotImplemented")), None, True)
        return _Route(lambda r: self._xml_read(r, unquote(bucket), name), "storage.objects.get", xml=True)

    # -- buckets --------------------------------------------------------------------------------

    def _list_buckets(self, request: ApiRequest) -> ApiResponse:
        project = request.query.get("project")
        if not project:
            raise required("Required parameter: project")
        buckets = self.state.buckets(self._project_number(project), request.query.get("prefix", ""))
        api_base, _ = _link_bases(request.host)
        body: JsonDict = {"kind": "storage#buckets"}
        if buckets:
            body["items"] = [bucket.resource(api_base) for bucket in buckets]
        return _json(200, body)

    def _insert_bucket(self, request: ApiRequest) -> ApiResponse:
        project = request.query.get("project")
        if not project:
            raise required("Required parameter: project")
        body = _json_body(request)
        name = body.get("name")
        if not name:
            raise required("Required field 'name' is missing.")
        bucket = self.state.create_bucket(
            name,
            self._project_number(project),
            location=body.get("location") or "US",
            storage_class=body.get("storageClass") or "STANDARD",
            labels=body.get("labels"),
        )
        return _json(200, bucket.resource(_link_bases(request.host)[0]))

    def _get_bucket(self, request: ApiRequest, bucket: str) -> ApiResponse:
        return _json(200, self.state.bucket(bucket).resource(_link_bases(request.host)[0]))

    def _patch_bucket(self, request: ApiRequest, bucket: str) -> ApiResponse:
        updated = self.state.patch_bucket(bucket, _json_body(request))
        return _json(200, updated.resource(_link_bases(request.host)[0]))

    def _delete_bucket(self, request: ApiRequest, bucket: str) -> ApiResponse:
        self.state.delete_bucket(bucket)
        return ApiResponse(204)

    # -- objects --------------------------------------------------------------------------------

    def _resource(self, request: ApiRequest, stored: StoredObject) -> ApiResponse:
        return _json(200, stored.resource(*_link_bases(request.host)))

    def _get_object(self, request: ApiRequest, bucket: str, name: str) -> ApiResponse:
        if request.query.get("alt") == "media":
            return self._download(request, bucket, name)
        stored = self.state.get_object(
            bucket, name, _generation(request.query), Preconditions.from_query(request.query)
        )
        return self._resource(request, stored)

    def _download(self, request: ApiRequest, bucket: str, name: str) -> ApiResponse:
        stored = self.state.get_object(
            bucket, name, _generation(request.query), Preconditions.from_query(request.query)
        )
        return _media(request, stored, xml=False)

    def _xml_read(self, request: ApiRequest, bucket: str, name: str) -> ApiResponse:
        stored = self.state.get_object(bucket, name, _generation(request.query))
        return _media(request, stored, xml=True)

    def _list_objects(self, request: ApiRequest, bucket: str) -> ApiResponse:
        query = request.query
        try:
            max_results = int(query.get("maxResults") or 1000)
        except ValueError:
            raise invalid(f"Invalid value for maxResults: {query['maxResults']}") from None
        if max_results < 0:
            raise invalid(f"Invalid value for maxResults: {max_results}")
        page = self.state.list_objects(
            bucket,
            ListQuery(
                prefix=query.get("prefix", ""),
                delimiter=query.get("delimiter", ""),
                start_offset=query.get("startOffset", ""),
                end_offset=query.get("endOffset", ""),
                match_glob=query.get("matchGlob", ""),
                include_trailing_delimiter=query.get("includeTrailingDelimiter", "").lower() == "true",
                max_results=min(max_results or 1000, 1000),
                page_token=query.get("pageToken", ""),
            ),
        )
        bases = _link_bases(request.host)
        body: JsonDict = {"kind": "storage#objects"}
        if page.next_page_token:
            body["nextPageToken"] = page.next_page_token
        if page.prefixes:
            body["prefixes"] = page.prefixes
        if page.items:
            body["items"] = [item.resource(*bases) for item in page.items]
        return _json(200, body)

    def _update_object(self, request: ApiRequest, bucket: str, name: str, *, replace_all: bool) -> ApiResponse:
        stored = self.state.update_object(
            bucket,
            name,
            _json_body(request),
            Preconditions.from_query(request.query),
            replace_all=replace_all,
            generation=_generation(request.query),
        )
        return self._resource(request, stored)

    def _delete_object(self, request: ApiRequest, bucket: str, name: str) -> ApiResponse:
        self.state.delete_object(bucket, name, _generation(request.query), Preconditions.from_query(request.query))
        return ApiResponse(204)

    def _copy(
        self, request: ApiRequest, bucket: str, name: str, target_bucket: str, target_name: str, *, rewrite: bool
    ) -> ApiResponse:
        source_generation = request.query.get("sourceGeneration")
        stored = self.state.copy_object(
            bucket,
            name,
            target_bucket,
            target_name,
            source_generation=int(source_generation) if source_generation else None,
            overrides=_json_body(request),
            preconditions=Preconditions.from_query(request.query),
            source_preconditions=Preconditions.from_query(request.query, prefix="ifSource"),
        )
        resource = stored.resource(*_link_bases(request.host))
        if not rewrite:
            return _json(200, resource)
        size = str(stored.size)
        body = {
            "kind": "storage#rewriteResponse",
            "totalBytesRewritten": size,
            "objectSize": size,
            "done": True,
            "resource": resource,
        }
        return _json(200, body)

    def _compose(self, request: ApiRequest, bucket: str, name: str) -> ApiResponse:
        body = _json_body(request)
        stored = self.state.compose(
            bucket,
            name,
            body.get("sourceObjects") or [],
            body.get("destination") or {},
            Preconditions.from_query(request.query),
        )
        return self._resource(request, stored)

    # -- uploads --------------------------------------------------------------------------------

    def _upload(self, request: ApiRequest, bucket: str) -> ApiResponse:
        query = request.query
        if query.get("upload_id"):
            return self._resumable_chunk(request, query["upload_id"])
        upload_type = query.get("uploadType")
        if request.method != "POST" or upload_type not in ("media", "multipart", "resumable"):
            raise required(_UPLOAD_REQUIREMENT)
        preconditions = Preconditions.from_query(query)
        fields: dict[str, Any] = {"contentEncoding": query.get("contentEncoding")}
        if upload_type == "media":
            name = query.get("name")
            if not name:
                raise required(_UPLOAD_REQUIREMENT)
            fields["contentType"] = request.headers.get("content-type")
            stored = self.state.insert_object(bucket, name, request.body, fields, preconditions)
            return self._resource(request, stored)
        if upload_type == "multipart":
            metadata, media_type, media = _multipart_related(request)
            name = metadata.get("name") or query.get("name")
            if not name:
                raise required(_UPLOAD_REQUIREMENT)
            fields.update(metadata)
            fields["contentType"] = metadata.get("contentType") or media_type
            stored = self.state.insert_object(bucket, name, media, fields, preconditions)
            return self._resource(request, stored)
        metadata = _json_body(request)
        name = metadata.get("name") or query.get("name")
        if not name:
            raise required(_UPLOAD_REQUIREMENT)
        fields.update(metadata)
        fields["contentType"] = metadata.get("contentType") or request.headers.get("x-upload-content-type")
        expected = request.headers.get("x-upload-content-length")
        session = self.state.start_upload(
            bucket, name, fields, preconditions, int(expected) if expected and expected.isdigit() else None
        )
        scheme = "https" if request.host in PUBLIC_HOSTS else "http"
        location = (
            f"{scheme}://{request.host}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
            f"?uploadType=resumable&name={quote(name, safe='')}&upload_id={session.upload_id}"
        )
        return ApiResponse(200, [("Location", location), ("X-GUploader-UploadID", session.upload_id)])

    def _resumable_chunk(self, request: ApiRequest, upload_id: str) -> ApiResponse:
        if request.method == "DELETE":
            self.state.cancel_upload(upload_id)
            return ApiResponse(499, reason="Client Closed Request")
        content_range = request.headers.get("content-range", "").strip()
        persisted = len(self.state.upload_session(upload_id).data)
        if not content_range:  # the whole object in one request
            session = self.state.append_upload(upload_id, 0, request.body, len(request.body))
        else:
            match = re.fullmatch(r"bytes (?:\*|(\d+)-(\d+))/(\*|\d+)", content_range)
            if match is None:
                raise invalid(f"Failed to parse Content-Range header: {content_range}")
            first, last, total_text = match.groups()
            total = None if total_text == "*" else int(total_text)
            if first is None:  # a status query, or the end of an upload whose size became known
                if request.body:
                    raise invalid("Content-Range 'bytes */N' must come with an empty body.")
                session = self.state.append_upload(upload_id, persisted, b"", total)
            else:
                start, end = int(first), int(last)
                if end - start + 1 != len(request.body):
                    raise invalid(f"Content-Range {content_range} does not match the {len(request.body)} bytes sent.")
                session = self.state.append_upload(upload_id, start, request.body, total)
        if session.result is not None:
            return self._resource(request, session.result)
        headers = [("X-GUploader-UploadID", upload_id)]
        if session.data:
            headers.append(("Range", f"bytes=0-{len(session.data) - 1}"))
        return ApiResponse(308, headers, reason="Resume Incomplete")

    # -- batch ----------------------------------------------------------------------------------

    def _batch(self, request: ApiRequest) -> ApiResponse:
        boundary = _boundary(request.headers.get("content-type", ""), "multipart/mixed")
        parts = _split_multipart(request.body, boundary)
        if len(parts) > MAX_BATCH_PARTS:
            raise invalid(f"The batch request has {len(parts)} parts; at most {MAX_BATCH_PARTS} are allowed.")
        out_boundary = "batch_" + secrets.token_urlsafe(12)
        chunks: list[bytes] = []
        for index, part in enumerate(parts, start=1):
            part_headers, content = _split_headers(part)
            sub = _embedded_request(content, request)
            response = self.handle(sub, in_batch=True)
            content_id = part_headers.get("content-id", "").strip("<> ")
            response_id = f"<response-{content_id or index}>"
            reason = response.reason or _reason(response.status)
            head = [f"HTTP/1.1 {response.status} {reason}"]
            head += [f"{name}: {value}" for name, value in response.headers]
            head.append(f"Content-Length: {len(response.body)}")
            chunks.append(
                f"--{out_boundary}\r\nContent-Type: application/http\r\nContent-ID: {response_id}\r\n\r\n".encode()
                + "\r\n".join(head).encode()
                + b"\r\n\r\n"
                + response.body
                + b"\r\n"
            )
        chunks.append(f"--{out_boundary}--\r\n".encode())
        return ApiResponse(200, [("Content-Type", f"multipart/mixed; boundary={out_boundary}")], b"".join(chunks))


# -- HTTP -------------------------------------------------------------------------------------------


class _StorageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "UploadServer"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        owner: StorageServer = self.server.owner  # type: ignore[attr-defined]
        body = self._read_body()
        url = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        host = headers.get("host", "").lower().removesuffix(":443")
        authorization = headers.get("authorization")
        request = ApiRequest(
            method=self.command,
            host=host,
            path=url.path,
            query={name: values[0] for name, values in parse_qs(url.query, keep_blank_values=True).items()},
            headers=headers,
            body=body,
            identity=owner.tokens.identity_from_header(authorization),
            has_credentials=bool(authorization),
        )
        response = owner.handle(request)
        self.send_response(response.status, response.reason)
        names = {name.lower() for name, _ in response.headers}
        for name, value in response.headers:
            self.send_header(name, value)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: object) -> None:
        pass


# -- responses ----------------------------------------------------------------------------------------


def _json(status: int, body: JsonDict) -> ApiResponse:
    return ApiResponse(status, [("Content-Type", "application/json; charset=UTF-8")], json.dumps(body).encode())


def _json_error(error: StorageError) -> ApiResponse:
    headers = list(error.headers.items())
    if error.status == 304:
        return ApiResponse(304, headers)
    detail: JsonDict = {"message": error.message, "domain": "global", "reason": error.reason}
    if error.location:
        detail.update(locationType="header", location=error.location)
    body = {"error": {"code": error.status, "message": error.message, "errors": [detail]}}
    response = _json(error.status, body)
    response.headers += headers
    return response


def _xml_error(error: StorageError) -> ApiResponse:
    if error.status == 304:
        return ApiResponse(304, list(error.headers.items()))
    code = error.xml_code or HTTPStatus(error.status).phrase.replace(" ", "")
    details = f"<Details>{xml_escape(error.message)}</Details>" if error.message != error.xml_message else ""
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f"<Error><Code>{code}</Code><Message>{xml_escape(error.xml_message)}</Message>{details}</Error>"
    )
    headers = [("Content-Type", "application/xml; charset=UTF-8"), *error.headers.items()]
    return ApiResponse(error.status, headers, body.encode())


def _media(request: ApiRequest, stored: StoredObject, *, xml: bool) -> ApiResponse:
    """The bytes of an object with the headers GCS sends, honouring Range and gzip transcoding."""
    data = stored.data
    encoding = stored.content_encoding
    headers = [
        ("Content-Type", stored.content_type),
        ("X-Goog-Generation", str(stored.generation)),
        ("X-Goog-Metageneration", str(stored.metageneration)),
        ("X-Goog-Stored-Content-Encoding", encoding or "identity"),
        ("X-Goog-Stored-Content-Length", str(stored.size)),
        ("X-Goog-Hash", f"crc32c={stored.crc32c}" + (f",md5={stored.md5_hash}" if stored.md5_hash else "")),
        ("X-Goog-Storage-Class", stored.fields.get("storageClass", "STANDARD")),
        ("Last-Modified", http_date(stored.updated)),
        ("ETag", f'"{_md5_hex(stored)}"' if xml else stored.resource("", "")["etag"]),
        ("Cache-Control", stored.fields.get("cacheControl") or "private, max-age=0"),
        ("Accept-Ranges", "bytes"),
    ]
    for name, header in (("contentDisposition", "Content-Disposition"), ("contentLanguage", "Content-Language")):
        if stored.fields.get(name):
            headers.append((header, stored.fields[name]))
    if xml:
        headers += [(f"x-goog-meta-{key}", value) for key, value in (stored.fields.get("metadata") or {}).items()]
    accepts_gzip = "gzip" in request.headers.get("accept-encoding", "")
    if encoding == "gzip" and not accepts_gzip:
        # Decompressive transcoding: GCS gunzips and ignores Range.
        return ApiResponse(200, [*headers, ("Warning", "214 UploadServer gunzipped")], gzip.decompress(data))
    if encoding:
        headers.append(("Content-Encoding", encoding))
    byte_range = _parse_range(request.headers.get("range"), len(data))
    if byte_range is None:
        return ApiResponse(200, headers, data)
    if byte_range == "unsatisfiable":
        error = StorageError(
            416,
            "The requested range cannot be satisfied.",
            "requestedRangeNotSatisfiable",
            "InvalidRange",
            headers={"Content-Range": f"bytes */{len(data)}"},
        )
        return _xml_error(error) if xml else _json_error(error)
    first, last = byte_range
    headers.append(("Content-Range", f"bytes {first}-{last}/{len(data)}"))
    return ApiResponse(206, headers, data[first : last + 1])


def _md5_hex(stored: StoredObject) -> str:
    if stored.md5_hash is None:
        return stored.crc32c
    return base64.b64decode(stored.md5_hash).hex()


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(first, last) for a single `bytes=` range, "unsatisfiable", or None to send everything."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


def _link_bases(host: str) -> tuple[str, str]:
    """(selfLink base, mediaLink base): Google's hosts behind the proxy, else this server's address."""
    if host in PUBLIC_HOSTS:
        return "https://www.googleapis.com", "https://storage.googleapis.com"
    return f"http://{host}", f"http://{host}"


def _json_body(request: ApiRequest) -> JsonDict:
    if not request.body.strip():
        return {}
    text = request.body.decode("utf-8", errors="replace")
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = json.loads(text.replace("'", '"'))  # TensorFlow's compose body uses single quotes
        except ValueError:
            raise StorageError(400, "Parse Error", "parseError", "InvalidArgument") from None
    if not isinstance(value, dict):
        raise StorageError(400, "Parse Error", "parseError", "InvalidArgument")
    return value


def _generation(query: Mapping[str, str]) -> int | None:
    raw = query.get("generation")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"Invalid argument for parameter generation: {raw}") from None


def _boundary(content_type: str, expected: str) -> str:
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != expected:
        raise invalid(f"Expected a {expected} body, got Content-Type '{content_type}'.")
    match = re.search(r'boundary="?([^";]+)"?', params)
    if match is None:
        raise invalid(f"The {expected} Content-Type has no boundary.")
    return match.group(1)


def _split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The parts of a multipart body (each with its headers); tolerates LF as well as CRLF."""
    delimiter = re.escape(b"--" + boundary.encode())
    chunks = re.split(rb"(?:^|\r?\n)" + delimiter, body)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        _, _, content = chunk.partition(b"\n")  # the rest of the delimiter line
        parts.append(content)
    return parts


def _split_headers(part: bytes) -> tuple[dict[str, str], bytes]:
    if part.startswith(b"\r\n") or part.startswith(b"\n"):
        return {}, part[2:] if part.startswith(b"\r\n") else part[1:]
    match = re.search(rb"\r?\n\r?\n", part)
    head, content = (part, b"") if match is None else (part[: match.start()], part[match.end() :])
    headers: dict[str, str] = {}
    for line in re.split(rb"\r?\n", head):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip():
            headers[name.strip().lower()] = value.strip()
    return headers, content


def _multipart_related(request: ApiRequest) -> tuple[JsonDict, str | None, bytes]:
    """(metadata, media content type, media) of a `uploadType=multipart` body."""
    boundary = _boundary(request.headers.get("content-type", ""), "multipart/related")
    parts = _split_multipart(request.body, boundary)
    if len(parts) != 2:
        raise invalid(f"A multipart upload needs 2 parts (metadata and media), got {len(parts)}.")
    metadata_headers, metadata = _split_headers(parts[0])
    media_headers, media = _split_headers(parts[1])
    try:
        value = json.loads(metadata.decode() or "{}")
    except ValueError:
        raise StorageError(400, "Parse Error", "parseError", "InvalidArgument") from None
    return value, media_headers.get("content-type"), media


def _embedded_request(content: bytes, outer: ApiRequest) -> ApiRequest:
    """A batch part's HTTP request, sent with the outer request's host and credentials."""
    request_line, _, rest = content.partition(b"\n")
    method, target, *_ = request_line.decode("latin-1").strip().split(" ")
    headers, body = _split_headers(rest)
    url = urlsplit(target)
    return ApiRequest(
        method=method.upper(),
        host=outer.host,
        path=url.path,
        query={name: values[0] for name, values in parse_qs(url.query, keep_blank_values=True).items()},
        headers={**{k: v for k, v in outer.headers.items() if k == "authorization"}, **headers},
        body=body,
        identity=outer.identity,
        has_credentials=outer.has_credentials,
    )


def _copy_target(rest: list[str]) -> tuple[str, str, str, bool] | None:
    """(source name, target bucket, target name, is rewrite) of `SRC/copyTo|rewriteTo/b/BUCKET/o/NAME`."""
    for index, segment in enumerate(rest):
        if (
            segment in ("copyTo", "rewriteTo")
            and index >= 1
            and len(rest) >= index + 5
            and rest[index + 1] == "b"
            and rest[index + 3] == "o"
        ):
            source = unquote("/".join(rest[:index]))
            return source, unquote(rest[index + 2]), unquote("/".join(rest[index + 4 :])), segment == "rewriteTo"
    return None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _not_found_path() -> StorageError:
    return StorageError(404, "Not Found", "notFound", "NotFound")


def _method_not_allowed() -> StorageError:
    return StorageError(405, "Method Not Allowed", "methodNotAllowed", "MethodNotAllowed")


def _raise(error: StorageError) -> ApiResponse:
    raise error
