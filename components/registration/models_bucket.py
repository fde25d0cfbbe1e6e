"""Copies a blessed SavedModel into the models bucket, where its registry version points.

The pipeline root holds every run's artifacts; the pipeline's and Dataflow's identities may delete
there and a lifecycle rule may clean it up. A registered version must outlive that, or a rollback
to it fails. So before the upload the SavedModel is copied to `registry.models_bucket`, whose IAM
lets the pipeline create objects but never delete or replace them (infra/storage.tf, infra/iam.tf):

    <models_bucket>/<model_id>/<run>/1/saved_model.pb ...   tf-serving: the version's artifactUri is
                                                            <models_bucket>/<model_id>/<run>, the
                                                            --model_base_path TF Serving reads
                                                            numbered version folders from
    <models_bucket>/<model_id>/<run>/saved_model.pb ...     prebuilt: the SavedModel at the root

`<run>` is the pipeline job ID, or `sha256-<digest of the files>` when no job is known. Each
registered version gets a folder of its own: TF Serving serves the highest version number under
its base path, so versions sharing a base path would all serve the newest model.

Every object is written with `ifGenerationMatch=0` (create only). When the step runs again for the
same run (a retried task), objects already there are kept if their CRC32C is the source's, and the
step fails if it differs: a model in the bucket never changes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.registration.settings import TF_SERVING, RegistrySettings

# The version folder TF Serving finds under each registered version's base path.
TF_SERVING_VERSION = 1
# Written last, so that a folder holding it holds the whole SavedModel.
SAVED_MODEL_FILE = "saved_model.pb"
_LOG = logging.getLogger(__name__)


class ModelCopyError(Exception):
    """The SavedModel could not be copied to the models bucket; the message says why."""


@dataclass(frozen=True)
class CopiedModel:
    artifact_uri: str  # what the registry version points at (TF Serving's base path, or the SavedModel)
    saved_model_uri: str  # the folder holding saved_model.pb
    files: int
    already_there: int  # files a previous attempt of the same run had copied


@dataclass(frozen=True)
class _SourceFile:
    relative_name: str
    crc32c: str  # base64 of the big-endian CRC32C, as Cloud Storage reports it
    blob: Any = None  # a gs:// source
    path: Path | None = None  # a local source


def copy_to_models_bucket(settings: RegistrySettings, model_dir: str, run: str | None) -> CopiedModel:
    """Copies the SavedModel folder `model_dir` (gs:// or local) into the layout of
    `settings.serving_container`; returns where the registry version must point."""
    from google.api_core import exceptions
    from google.cloud import storage

    if not settings.models_bucket:
        raise ModelCopyError("registry.models_bucket is not set")
    client = storage.Client(project=settings.project)
    try:
        sources = sorted(_source_files(client, model_dir), key=_saved_model_last)
    except exceptions.GoogleAPICallError as error:
        raise ModelCopyError(f"cannot list {model_dir}: {error}") from None
    if not any(source.relative_name == SAVED_MODEL_FILE for source in sources):
        raise ModelCopyError(f"{model_dir} holds no {SAVED_MODEL_FILE}")
    artifact_uri = f"{settings.models_bucket.rstrip('/')}/{settings.model_id}/{run or _content_key(sources)}"
    saved_model_uri = (
        f"{artifact_uri}/{TF_SERVING_VERSION}" if settings.serving_container == TF_SERVING else artifact_uri
    )
    bucket_name, _, prefix = saved_model_uri.removeprefix("gs://").partition("/")
    bucket = client.bucket(bucket_name)
    kept = 0
    for source in sources:
        target = bucket.blob(f"{prefix}/{source.relative_name}")
        kept += _create(target, source, client)
    _LOG.info("Copied %d files of %s to %s (%d were there already)", len(sources), model_dir, saved_model_uri, kept)
    return CopiedModel(artifact_uri, saved_model_uri, len(sources), kept)


def _create(target: Any, source: _SourceFile, client: Any) -> int:
    """Creates `target` from `source`; 1 when an identical object was there already, else 0."""
    from google.api_core import exceptions

    uri = f"gs://{target.bucket.name}/{target.name}"
    try:
        if source.blob is not None:
            token, _, _ = target.rewrite(source.blob, if_generation_match=0)
            while token is not None:  # large objects across locations take several calls
                token, _, _ = target.rewrite(source.blob, token=token, if_generation_match=0)
        else:
            assert source.path is not None
            target.upload_from_filename(str(source.path), if_generation_match=0)
        return 0
    # 412: the object exists. Without storage.objects.delete, replacing it is also refused (403).
    except (exceptions.PreconditionFailed, exceptions.Forbidden) as error:
        existing = target.bucket.get_blob(target.name, client=client)
        if existing is None:
            raise ModelCopyError(f"cannot create {uri}: {error}") from None
        if existing.crc32c != source.crc32c:
            raise ModelCopyError(
                f"{uri} exists with other content (crc32c {existing.crc32c}, the model's file has {source.crc32c}); "
                "objects in the models bucket are never replaced: register from a new run"
            ) from None
        return 1
    except exceptions.GoogleAPICallError as error:
        raise ModelCopyError(f"cannot create {uri}: {error}") from None


def _source_files(client: Any, model_dir: str) -> Iterator[_SourceFile]:
    if model_dir.startswith("gs://"):
        bucket, _, prefix = model_dir.removeprefix("gs://").partition("/")
        prefix = prefix.rstrip("/") + "/"
        for blob in client.list_blobs(bucket, prefix=prefix):
            if not blob.name.endswith("/"):  # folder placeholders
                yield _SourceFile(blob.name[len(prefix) :], blob.crc32c, blob=blob)
        return
    root = Path(model_dir)
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            yield _SourceFile(path.relative_to(root).as_posix(), _crc32c(path), path=path)


def _saved_model_last(source: _SourceFile) -> tuple[bool, str]:
    return source.relative_name == SAVED_MODEL_FILE, source.relative_name


def _content_key(sources: list[_SourceFile]) -> str:
    digest = hashlib.sha256()
    for source in sorted(sources, key=lambda s: s.relative_name):
        digest.update(f"{source.relative_name}\0{source.crc32c}\n".encode())
    return f"sha256-{digest.hexdigest()[:16]}"


def _crc32c(path: Path) -> str:
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode()
