"""The state behind the Cloud Storage stand-in: buckets, objects, generations, preconditions, listings.

Transport-free and thread-safe (one lock). Behaviour follows the GCS JSON API reference: generations are
microsecond timestamps that grow with every write, metagenerations count metadata changes, preconditions
(ifGenerationMatch=0 means "must not exist") fail with 412 on writes and 304 on reads for the *NotMatch
forms, md5Hash and crc32c are base64 of the big-endian digests (composite objects have no md5Hash),
listings are sorted by name and page with opaque tokens, and nothing is ever created implicitly.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import google_crc32c

JsonDict = dict[str, Any]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_LIST_RESULTS = 1000
MAX_COMPOSE_SOURCES = 32
SOFT_DELETE_SECONDS = 604800  # the default policy of new buckets

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
# Object metadata a client may set (JSON API "writable" fields).
WRITABLE_OBJECT_FIELDS = (
    "contentType",
    "contentEncoding",
    "contentDisposition",
    "contentLanguage",
    "cacheControl",
    "customTime",
    "metadata",
    "storageClass",
)


class StorageError(Exception):
    """An error as GCS reports it: HTTP status, message, reason, and the XML API's code for it."""

    def __init__(
        self,
        status: int,
        message: str,
        reason: str,
        xml_code: str = "",
        xml_message: str = "",
        *,
        location: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.xml_code = xml_code
        self.xml_message = xml_message or message
        self.location = location
        self.headers = dict(headers or {})


def no_such_object(bucket: str, name: str) -> StorageError:
    return StorageError(
        404, f"No such object: {bucket}/{name}", "notFound", "NoSuchKey", "The specified key does not exist."
    )


def no_such_bucket() -> StorageError:
    message = "The specified bucket does not exist."
    return StorageError(404, message, "notFound", "NoSuchBucket", message)


def precondition_failed() -> StorageError:
    message = "At least one of the pre-conditions you specified did not hold."
    return StorageError(412, message, "conditionNotMet", "PreconditionFailed", message, location="If-Match")


def not_modified() -> StorageError:
    return StorageError(304, "Not Modified", "notModified", "NotModified")


def invalid(message: str) -> StorageError:
    return StorageError(400, message, "invalid", "InvalidArgument")


def required(message: str) -> StorageError:
    return StorageError(400, message, "required", "InvalidArgument")


def checksums(data: bytes) -> tuple[str, str]:
    """(md5Hash, crc32c) as GCS reports them: base64 of the MD5 digest and of the big-endian CRC32C."""
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    crc = base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
    return md5, crc


def rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def http_date(moment: dt.datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


def etag(*numbers: int) -> str:
    """An etag shaped like GCS's: base64 of a protobuf with the given varint fields (1, 2, ...)."""
    encoded = bytearray()
    for field_number, value in enumerate(numbers, start=1):
        encoded.append(field_number << 3)
        while True:
            byte = value & 0x7F
            value >>= 7
            encoded.append(byte | (0x80 if value else 0))
            if not value:
                break
    return base64.b64encode(bytes(encoded)).decode()


@dataclass(frozen=True)
class Preconditions:
    if_generation_match: int | None = None
    if_generation_not_match: int | None = None
    if_metageneration_match: int | None = None
    if_metageneration_not_match: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], prefix: str = "if") -> Preconditions:
        """Reads ifGenerationMatch & co. (prefix "ifSource" for ifSourceGenerationMatch & co.)."""

        def number(name: str) -> int | None:
            raw = query.get(f"{prefix}{name}")
            if raw is None or raw == "":
                return None
            try:
                return int(raw)
            except ValueError:
                raise invalid(f"Invalid argument for parameter {prefix}{name}: {raw}") from None

        return cls(
            number("GenerationMatch"),
            number("GenerationNotMatch"),
            number("MetagenerationMatch"),
            number("MetagenerationNotMatch"),
        )

    def check_write(self, current: StoredObject | None) -> None:
        """412 unless the live object (or its absence) satisfies every condition.

        ifGenerationMatch=0 means "no live object"; ifGenerationNotMatch=0 means "a live object exists";
        the *NotMatch and metageneration conditions fail when there is no live object.
        """
        generation = current.generation if current else 0
        if self.if_generation_match is not None and self.if_generation_match != generation:
            raise precondition_failed()
        if self.if_generation_not_match is not None and (
            current is None or self.if_generation_not_match == current.generation
        ):
            raise precondition_failed()
        if self.if_metageneration_match is not None and (
            current is None or current.metageneration != self.if_metageneration_match
        ):
            raise precondition_failed()
        if self.if_metageneration_not_match is not None and (
            current is None or current.metageneration == self.if_metageneration_not_match
        ):
            raise precondition_failed()

    def check_read(self, current: StoredObject) -> None:
        """412 for failed *Match conditions, 304 for failed *NotMatch conditions (as GCS answers GETs)."""
        if self.if_generation_match is not None and self.if_generation_match != current.generation:
            raise precondition_failed()
        if self.if_metageneration_match is not None and self.if_metageneration_match != current.metageneration:
            raise precondition_failed()
        if self.if_generation_not_match == current.generation:
            raise not_modified()
        if self.if_metageneration_not_match == current.metageneration:
            raise not_modified()


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    name: str
    data: bytes
    generation: int
    metageneration: int
    created: dt.datetime
    updated: dt.datetime
    content_type: str = DEFAULT_CONTENT_TYPE
    md5_hash: str | None = None  # None for composite objects, as on GCS
    crc32c: str = ""
    component_count: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)  # other writable fields: contentEncoding, metadata...

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def content_encoding(self) -> str | None:
        return self.fields.get("contentEncoding")

    def resource(self, api_base: str, download_base: str) -> JsonDict:
        from urllib.parse import quote

        encoded = quote(self.name, safe="")
        resource: JsonDict = {
            "kind": "storage#object",
            "id": f"{self.bucket}/{self.name}/{self.generation}",
            "selfLink": f"{api_base}/storage/v1/b/{self.bucket}/o/{encoded}",
            "mediaLink": (
                f"{download_base}/download/storage/v1/b/{self.bucket}/o/{encoded}"
                f"?generation={self.generation}&alt=media"
            ),
            "name": self.name,
            "bucket": self.bucket,
            "generation": str(self.generation),
            "metageneration": str(self.metageneration),
            "contentType": self.content_type,
            "storageClass": self.fields.get("storageClass", "STANDARD"),
            "size": str(self.size),
            "crc32c": self.crc32c,
            "etag": etag(self.generation, self.metageneration),
            "timeCreated": rfc3339(self.created),
            "updated": rfc3339(self.updated),
            "timeStorageClassUpdated": rfc3339(self.created),
            "timeFinalized": rfc3339(self.created),
        }
        if self.md5_hash is not None:
            resource["md5Hash"] = self.md5_hash
        if self.component_count is not None:
            resource["componentCount"] = self.component_count
        for name, value in self.fields.items():
            if name != "storageClass" and value is not None:
                resource[name] = value
        return resource


@dataclass
class Bucket:
    name: str
    project_number: str
    created: dt.datetime
    updated: dt.datetime
    location: str = "US"
    storage_class: str = "STANDARD"
    metageneration: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    objects: dict[str, StoredObject] = field(default_factory=dict)

    def resource(self, api_base: str) -> JsonDict:
        multi_region = self.location.upper() in ("US", "EU", "ASIA")
        created = rfc3339(self.created)
        return {
            "kind": "storage#bucket",
            "selfLink": f"{api_base}/storage/v1/b/{self.name}",
            "id": self.name,
            "name": self.name,
            "projectNumber": self.project_number,
            "metageneration": str(self.metageneration),
            "location": self.location.upper(),
            "storageClass": self.storage_class,
            "etag": etag(self.metageneration),
            "timeCreated": created,
            "updated": rfc3339(self.updated),
            "locationType": "multi-region" if multi_region else "region",
            "rpo": "DEFAULT",
            "iamConfiguration": {
                "bucketPolicyOnly": {"enabled": True, "lockedTime": created},
                "uniformBucketLevelAccess": {"enabled": True, "lockedTime": created},
                "publicAccessPrevention": "enforced",
            },
            "softDeletePolicy": {"retentionDurationSeconds": str(SOFT_DELETE_SECONDS), "effectiveTime": created},
            **({"labels": dict(self.labels)} if self.labels else {}),
        }


@dataclass(frozen=True)
class ListQuery:
    prefix: str = ""
    delimiter: str = ""
    start_offset: str = ""
    end_offset: str = ""
    match_glob: str = ""
    include_trailing_delimiter: bool = False
    max_results: int = MAX_LIST_RESULTS
    page_token: str = ""


@dataclass(frozen=True)
class ListPage:
    items: list[StoredObject]
    prefixes: list[str]
    next_page_token: str | None


@dataclass
class UploadSession:
    upload_id: str
    bucket: str
    name: str
    fields: dict[str, Any]
    preconditions: Preconditions
    expected_size: int | None
    data: bytearray = field(default_factory=bytearray)
    result: StoredObject | None = None
    cancelled: bool = False


class StorageState:
    """All buckets and objects; every method is atomic."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._buckets: dict[str, Bucket] = {}
        self._uploads: dict[str, UploadSession] = {}
        self._last_generation = 0

    # -- buckets --------------------------------------------------------------------------------

    def create_bucket(
        self,
        name: str,
        project_number: str,
        *,
        location: str = "US",
        storage_class: str = "STANDARD",
        labels: Mapping[str, str] | None = None,
    ) -> Bucket:
        if not _BUCKET_NAME.match(name) or ".." in name:
            raise invalid(f"Invalid bucket name: '{name}'")
        with self._lock:
            existing = self._buckets.get(name)
            if existing is not None:
                if existing.project_number == project_number:
                    message = "Your previous request to create the named bucket succeeded and you already own it."
                else:
                    message = (
                        "The requested bucket name is not available. The bucket namespace is shared by all users "
                        "of the system. Please select a different name and try again."
                    )
                raise StorageError(409, message, "conflict", "BucketAlreadyOwnedByYou", message)
            now = _now()
            bucket = Bucket(
                name,
                project_number,
                now,
                now,
                location=location,
                storage_class=storage_class,
                labels=dict(labels or {}),
            )
            self._buckets[name] = bucket
            return bucket

    def bucket(self, name: str) -> Bucket:
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                raise no_such_bucket()
            return bucket

    def buckets(self, project_number: str, prefix: str = "") -> list[Bucket]:
        with self._lock:
            return [
                bucket
                for name, bucket in sorted(self._buckets.items())
                if bucket.project_number == project_number and name.startswith(prefix)
            ]

    def delete_bucket(self, name: str) -> None:
        with self._lock:
            bucket = self.bucket(name)
            if bucket.objects:
                message = "The bucket you tried to delete is not empty."
                raise StorageError(409, message, "conflict", "BucketNotEmpty", message)
            del self._buckets[name]

    def patch_bucket(self, name: str, changes: Mapping[str, Any]) -> Bucket:
        with self._lock:
            bucket = self.bucket(name)
            if "labels" in changes:
                labels = changes["labels"] or {}
                for key, value in labels.items():
                    if value is None:
                        bucket.labels.pop(key, None)
                    else:
                        bucket.labels[key] = value
                if changes["labels"] is None:
                    bucket.labels.clear()
            if changes.get("storageClass"):
                bucket.storage_class = changes["storageClass"]
            bucket.metageneration += 1
            bucket.updated = _now()
            return bucket

    # -- objects --------------------------------------------------------------------------------

    def get_object(
        self, bucket: str, name: str, generation: int | None = None, preconditions: Preconditions | None = None
    ) -> StoredObject:
        with self._lock:
            current = self.bucket(bucket).objects.get(name)
            if current is None or (generation is not None and generation != current.generation):
                raise no_such_object(bucket, name)
            (preconditions or Preconditions()).check_read(current)
            return current

    def find_object(self, bucket: str, name: str) -> StoredObject | None:
        with self._lock:
            return self.bucket(bucket).objects.get(name)

    def insert_object(
        self,
        bucket: str,
        name: str,
        data: bytes,
        fields: Mapping[str, Any] | None = None,
        preconditions: Preconditions | None = None,
    ) -> StoredObject:
        _check_object_name(name)
        fields = dict(fields or {})
        md5, crc = checksums(data)
        _check_declared_checksums(fields, md5, crc)
        with self._lock:
            objects = self.bucket(bucket).objects
            (preconditions or Preconditions()).check_write(objects.get(name))
            now = _now()
            stored = StoredObject(
                bucket=bucket,
                name=name,
                data=bytes(data),
                generation=self._next_generation(),
                metageneration=1,
                created=now,
                updated=now,
                content_type=fields.pop("contentType", None) or DEFAULT_CONTENT_TYPE,
                md5_hash=md5,
                crc32c=crc,
                fields=_writable(fields),
            )
            objects[name] = stored
            return stored

    def update_object(
        self,
        bucket: str,
        name: str,
        changes: Mapping[str, Any],
        preconditions: Preconditions | None = None,
        *,
        replace_all: bool = False,
        generation: int | None = None,
    ) -> StoredObject:
        """PATCH (merge; null deletes) or PUT (`replace_all`) of an object's writable metadata."""
        with self._lock:
            current = self.get_object(bucket, name, generation)
            (preconditions or Preconditions()).check_write(current)
            fields = {} if replace_all else dict(current.fields)
            content_type = DEFAULT_CONTENT_TYPE if replace_all else current.content_type
            for key, value in changes.items():
                if key == "contentType":
                    content_type = value or DEFAULT_CONTENT_TYPE
                elif key == "metadata" and not replace_all and value is not None:
                    merged = dict(fields.get("metadata") or {})
                    for meta_key, meta_value in value.items():
                        if meta_value is None:
                            merged.pop(meta_key, None)
                        else:
                            merged[meta_key] = str(meta_value)
                    fields["metadata"] = merged or None
                elif key in WRITABLE_OBJECT_FIELDS:
                    fields[key] = value
            updated = replace(
                current,
                content_type=content_type,
                fields=_writable(fields),
                metageneration=current.metageneration + 1,
                updated=_now(),
            )
            self.bucket(bucket).objects[name] = updated
            return updated

    def delete_object(
        self, bucket: str, name: str, generation: int | None = None, preconditions: Preconditions | None = None
    ) -> None:
        with self._lock:
            current = self.get_object(bucket, name, generation)
            (preconditions or Preconditions()).check_write(current)
            del self.bucket(bucket).objects[name]

    def copy_object(
        self,
        source_bucket: str,
        source_name: str,
        destination_bucket: str,
        destination_name: str,
        *,
        source_generation: int | None = None,
        overrides: Mapping[str, Any] | None = None,
        preconditions: Preconditions | None = None,
        source_preconditions: Preconditions | None = None,
    ) -> StoredObject:
        """copyTo / rewriteTo: the source's data, its metadata unless the request body gives new metadata."""
        with self._lock:
            source = self.get_object(source_bucket, source_name, source_generation)
            (source_preconditions or Preconditions()).check_write(source)
            self.bucket(destination_bucket)
            overrides = {key: value for key, value in (overrides or {}).items() if key in WRITABLE_OBJECT_FIELDS}
            fields = dict(overrides) if overrides else {"contentType": source.content_type, **source.fields}
            stored = self.insert_object(destination_bucket, destination_name, source.data, fields, preconditions)
            if source.md5_hash is None:  # a copy of a composite object is composite too
                stored = replace(stored, md5_hash=None, component_count=source.component_count)
                self.bucket(destination_bucket).objects[destination_name] = stored
            return stored

    def compose(
        self,
        bucket: str,
        destination_name: str,
        sources: Iterable[Mapping[str, Any]],
        destination_fields: Mapping[str, Any] | None = None,
        preconditions: Preconditions | None = None,
    ) -> StoredObject:
        source_list = list(sources)
        if not source_list:
            raise required("Required field 'sourceObjects' is missing.")
        if len(source_list) > MAX_COMPOSE_SOURCES:
            raise invalid(f"The number of source components provided ({len(source_list)}) exceeds the maximum (32).")
        with self._lock:
            parts: list[StoredObject] = []
            for source in source_list:
                name = source.get("name")
                if not name:
                    raise required("Required field 'sourceObjects[].name' is missing.")
                generation = int(source["generation"]) if source.get("generation") else None
                part = self.get_object(bucket, name, generation)
                condition = source.get("objectPreconditions") or source.get("objectPrecondition") or {}
                if "ifGenerationMatch" in condition and int(condition["ifGenerationMatch"]) != part.generation:
                    raise precondition_failed()
                parts.append(part)
            fields = dict(destination_fields or {})
            fields.pop("name", None)
            fields.pop("bucket", None)
            if "contentType" not in fields:
                fields["contentType"] = parts[0].content_type
            stored = self.insert_object(
                bucket, destination_name, b"".join(p.data for p in parts), fields, preconditions
            )
            count = sum(part.component_count or 1 for part in parts)
            stored = replace(stored, md5_hash=None, component_count=count)
            self.bucket(bucket).objects[destination_name] = stored
            return stored

    def list_objects(self, bucket: str, query: ListQuery) -> ListPage:
        with self._lock:
            names = sorted(self.bucket(bucket).objects)
            objects = dict(self.bucket(bucket).objects)
        glob = _glob_regex(query.match_glob) if query.match_glob else None
        entries: list[tuple[str, str]] = []  # (key, "item" | "prefix"), in name order
        seen_prefixes: set[str] = set()
        for name in names:
            if not name.startswith(query.prefix):
                continue
            if query.start_offset and name < query.start_offset:
                continue
            if query.end_offset and name >= query.end_offset:
                continue
            if glob is not None and not glob.fullmatch(name):
                continue
            if query.delimiter:
                cut = name.find(query.delimiter, len(query.prefix))
                if cut >= 0:
                    common = name[: cut + len(query.delimiter)]
                    if common not in seen_prefixes:
                        seen_prefixes.add(common)
                        entries.append((common, "prefix"))
                    if not (query.include_trailing_delimiter and common == name):
                        continue
            entries.append((name, "item"))
        start = 0
        if query.page_token:
            after = _decode_page_token(query.page_token)
            start = next((i for i, (key, _) in enumerate(entries) if key > after), len(entries))
        page = entries[start : start + query.max_results]
        more = start + query.max_results < len(entries)
        return ListPage(
            items=[objects[key] for key, kind in page if kind == "item"],
            prefixes=[key for key, kind in page if kind == "prefix"],
            next_page_token=_encode_page_token(page[-1][0]) if more and page else None,
        )

    # -- resumable uploads -----------------------------------------------------------------------

    def start_upload(
        self,
        bucket: str,
        name: str,
        fields: Mapping[str, Any],
        preconditions: Preconditions,
        expected_size: int | None,
    ) -> UploadSession:
        _check_object_name(name)
        with self._lock:
            preconditions.check_write(self.bucket(bucket).objects.get(name))
            session = UploadSession(secrets.token_urlsafe(24), bucket, name, dict(fields), preconditions, expected_size)
            self._uploads[session.upload_id] = session
            return session

    def upload_session(self, upload_id: str) -> UploadSession:
        with self._lock:
            session = self._uploads.get(upload_id)
            if session is None or session.cancelled:
                raise StorageError(404, "No such upload session.", "notFound", "NoSuchUpload")
            return session

    def append_upload(self, upload_id: str, start: int, chunk: bytes, total: int | None) -> UploadSession:
        """Adds the bytes of `chunk` (starting at `start`) the session does not have; finishes at `total`."""
        with self._lock:
            session = self.upload_session(upload_id)
            if session.result is not None:
                return session
            persisted = len(session.data)
            if start > persisted:
                raise invalid(f"Invalid request: the upload has {persisted} byte(s) but the chunk starts at {start}.")
            session.data += chunk[persisted - start :]
            if total is not None:
                if len(session.data) > total:
                    raise invalid(f"Invalid request: the upload has more than the declared {total} byte(s).")
                if len(session.data) == total:
                    session.result = self.insert_object(
                        session.bucket, session.name, bytes(session.data), session.fields, session.preconditions
                    )
                    session.data = bytearray()
            return session

    def cancel_upload(self, upload_id: str) -> None:
        with self._lock:
            self.upload_session(upload_id).cancelled = True

    # -- helpers --------------------------------------------------------------------------------

    def _next_generation(self) -> int:
        self._last_generation = max(self._last_generation + 1, time.time_ns() // 1000)
        return self._last_generation


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _writable(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key in WRITABLE_OBJECT_FIELDS and value is not None}


def _check_object_name(name: str) -> None:
    if not name or len(name.encode()) > 1024:
        raise invalid("Object name must be between 1 and 1024 bytes long.")
    if "\r" in name or "\n" in name or name in (".", ".."):
        raise invalid(f"The specified object name is not valid: {name!r}.")


def _check_declared_checksums(fields: dict[str, Any], md5: str, crc: str) -> None:
    declared_md5 = fields.pop("md5Hash", None)
    declared_crc = fields.pop("crc32c", None)
    if declared_md5 and declared_md5 != md5:
        raise invalid(f'Provided MD5 hash "{declared_md5}" doesn\'t match calculated MD5 hash "{md5}".')
    if declared_crc and declared_crc != crc:
        raise invalid(f'Provided CRC32C "{declared_crc}" doesn\'t match calculated CRC32C "{crc}".')


def _encode_page_token(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode()


def _decode_page_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise invalid("The page token is invalid.") from None


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """GCS matchGlob: `*` within a path segment, `**` across segments, `?`, `[...]`, `{a,b}`."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(char))
                i += 1
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end + 1
        elif char == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                out.append(re.escape(char))
                i += 1
            else:
                options = pattern[i + 1 : end].split(",")
                out.append("(?:" + "|".join(re.escape(option) for option in options) + ")")
                i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out), re.DOTALL)
