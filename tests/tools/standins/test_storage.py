"""The Cloud Storage stand-in against the real google-cloud-storage client (STORAGE_EMULATOR_HOST mode)
and raw HTTP where the protocol itself is the point (resumable uploads, XML reads, 304/416)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import itertools
import json
from collections.abc import Iterator

import google_crc32c
import pytest
import requests
from google.api_core import exceptions
from google.cloud import storage

from tools.standins.metadata import TokenRegistry
from tools.standins.storage import StorageServer

_names = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[StorageServer]:
    with StorageServer() as running:
        yield running


@pytest.fixture
def client(server: StorageServer, monkeypatch: pytest.MonkeyPatch) -> storage.Client:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    return storage.Client(project="test-project")


@pytest.fixture
def bucket(server: StorageServer, client: storage.Client) -> storage.Bucket:
    name = f"bucket-{next(_names)}"
    server.create_bucket(name, project="test-project")
    return client.bucket(name)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def test_buckets_are_created_listed_and_missing_ones_are_404(client: storage.Client, server: StorageServer) -> None:
    created = client.create_bucket("made-by-client", location="us-central1")
    assert created.location == "US-CENTRAL1"
    assert client.get_bucket("made-by-client").name == "made-by-client"
    assert "made-by-client" in [b.name for b in client.list_buckets()]
    with pytest.raises(exceptions.Conflict, match="you already own it"):
        client.create_bucket("made-by-client")
    with pytest.raises(exceptions.NotFound, match="The specified bucket does not exist."):
        client.get_bucket("no-such-bucket")
    with pytest.raises(exceptions.NotFound, match="The specified bucket does not exist."):
        client.bucket("no-such-bucket").blob("x").upload_from_string(b"x")
    created.labels = {"team": "ml"}
    created.patch()
    assert (client.get_bucket("made-by-client").labels, created.metageneration) == ({"team": "ml"}, 2)
    server.put_object("made-by-client", "keep", b"x")
    with pytest.raises(exceptions.Conflict, match="The bucket you tried to delete is not empty."):
        created.delete()
    created.delete(force=True)
    assert "made-by-client" not in [b.name for b in client.list_buckets()]


def test_multipart_upload_and_download_with_gcs_checksums(bucket: storage.Bucket, server: StorageServer) -> None:
    data = b"hello rehearsal\n" * 100
    blob = bucket.blob("dir/file.txt")
    blob.upload_from_string(data, content_type="text/plain")
    assert (blob.md5_hash, blob.crc32c, blob.size, blob.metageneration) == (_md5(data), _crc32c(data), len(data), 1)
    assert blob.download_as_bytes(checksum="crc32c") == data
    assert bucket.get_blob("dir/file.txt").content_type == "text/plain"
    assert server.get_object(bucket.name, "dir/file.txt") == data
    first_generation = blob.generation
    blob.upload_from_string(b"second version")
    assert bucket.get_blob("dir/file.txt").generation > first_generation


def test_large_uploads_are_resumable_in_chunks(bucket: storage.Bucket, server: StorageServer) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB: above the client's 8 MB multipart limit
    blob = bucket.blob("large.bin", chunk_size=4 * 1024 * 1024)
    server.clear_requests()
    blob.upload_from_string(data, checksum="md5")
    statuses = [(r.method, r.status) for r in server.requests if r.path.startswith("/upload/")]
    assert statuses == [("POST", 200), ("PUT", 308), ("PUT", 308), ("PUT", 200)]
    assert server.get_object(bucket.name, "large.bin") == data
    assert blob.download_as_bytes(start=5, end=14) == data[5:15]


def test_resumable_protocol_ranges_status_queries_and_overlap(
    bucket: storage.Bucket, server: StorageServer, http: requests.Session
) -> None:
    initiated = http.post(
        f"{server.url}/upload/storage/v1/b/{bucket.name}/o?uploadType=resumable",
        json={"name": "resumed.bin", "contentType": "application/x-test"},
    )
    assert initiated.status_code == 200
    session_url = initiated.headers["Location"]
    assert "upload_id=" in session_url
    status = http.put(session_url, headers={"Content-Range": "bytes */*"})
    assert (status.status_code, "Range" in status.headers) == (308, False)
    first = http.put(session_url, data=b"a" * 10, headers={"Content-Range": "bytes 0-9/*"})
    assert (first.status_code, first.headers["Range"]) == (308, "bytes=0-9")
    # A retried chunk that overlaps what GCS already has only adds the new bytes.
    overlap = http.put(session_url, data=b"a" * 5 + b"b" * 5, headers={"Content-Range": "bytes 5-14/*"})
    assert overlap.headers["Range"] == "bytes=0-14"
    final = http.put(session_url, data=b"c" * 5, headers={"Content-Range": "bytes 15-19/20"})
    assert final.status_code == 200
    assert final.json()["size"] == "20" and final.json()["contentType"] == "application/x-test"
    again = http.put(session_url, headers={"Content-Range": "bytes */20"})
    assert again.status_code == 200 and again.json()["name"] == "resumed.bin"
    assert server.get_object(bucket.name, "resumed.bin") == b"a" * 10 + b"b" * 5 + b"c" * 5


def test_generation_and_metageneration_preconditions(
    bucket: storage.Bucket, server: StorageServer, http: requests.Session
) -> None:
    blob = bucket.blob("guarded")
    blob.upload_from_string(b"v1", if_generation_match=0)
    with pytest.raises(exceptions.PreconditionFailed, match="pre-conditions you specified did not hold"):
        bucket.blob("guarded").upload_from_string(b"v2", if_generation_match=0)
    blob.upload_from_string(b"v2", if_generation_match=blob.generation)
    blob.metadata = {"stage": "two"}
    blob.patch(if_metageneration_match=1)
    with pytest.raises(exceptions.PreconditionFailed):
        blob.patch(if_metageneration_match=1)
    url = f"{server.url}/storage/v1/b/{bucket.name}/o/guarded"
    assert http.get(url, params={"ifGenerationNotMatch": blob.generation}).status_code == 304
    assert http.get(url, params={"ifGenerationMatch": blob.generation + 1}).status_code == 412
    with pytest.raises(exceptions.PreconditionFailed):
        blob.delete(if_generation_match=blob.generation + 1)
    assert server.get_object(bucket.name, "guarded") == b"v2"


def test_patch_merges_metadata_and_counts_metagenerations(bucket: storage.Bucket) -> None:
    blob = bucket.blob("labelled")
    blob.metadata = {"a": "1", "b": "2"}
    blob.upload_from_string(b"x")
    blob.metadata = {"b": None, "c": "3"}
    blob.content_type = "text/csv"
    blob.patch()
    fresh = bucket.get_blob("labelled")
    assert (fresh.metadata, fresh.content_type, fresh.metageneration) == ({"a": "1", "c": "3"}, "text/csv", 2)


def test_listing_with_prefix_delimiter_pages_offsets_and_globs(bucket: storage.Bucket, client: storage.Client) -> None:
    names = ["a/1.txt", "a/2.csv", "a/b/3.txt", "a/", "c.txt", "d/4.txt"]
    for name in names:
        bucket.blob(name).upload_from_string(name)
    assert [b.name for b in client.list_blobs(bucket, page_size=2)] == sorted(names)
    top = client.list_blobs(bucket, delimiter="/")
    assert [b.name for b in top] == ["c.txt"]
    assert top.prefixes == {"a/", "d/"}
    inside = client.list_blobs(bucket, prefix="a/", delimiter="/", include_trailing_delimiter=True)
    assert [b.name for b in inside] == ["a/", "a/1.txt", "a/2.csv"]
    assert inside.prefixes == {"a/b/"}
    ranged = client.list_blobs(bucket, start_offset="a/2", end_offset="d")
    assert [b.name for b in ranged] == ["a/2.csv", "a/b/3.txt", "c.txt"]
    assert [b.name for b in client.list_blobs(bucket, match_glob="**/*.txt")] == [
        "a/1.txt",
        "a/b/3.txt",
        "c.txt",
        "d/4.txt",
    ]
    assert [b.name for b in client.list_blobs(bucket, match_glob="a/*.{csv,txt}")] == ["a/1.txt", "a/2.csv"]
    assert [b.name for b in client.list_blobs(bucket, prefix="zzz")] == []


def test_awkward_object_names_round_trip(
    bucket: storage.Bucket, client: storage.Client, server: StorageServer, http: requests.Session
) -> None:
    names = ["dir/with space.txt", "trailing/", "per%cent/100%.txt", "ünïcødé/文件.txt", "a+b=c&d?.txt"]
    for name in names:
        bucket.blob(name).upload_from_string(name.encode())
    listed = list(client.list_blobs(bucket))
    assert sorted(blob.name for blob in listed) == sorted(server.object_names(bucket.name)) == sorted(names)
    for blob in listed:  # listed blobs download through their mediaLink
        assert blob.download_as_bytes() == blob.name.encode()
    for name in names:
        # XML API: the object path is percent-encoded per segment, '/' kept.
        encoded = "/".join(requests.utils.quote(part, safe="") for part in name.split("/"))
        assert http.get(f"{server.url}/{bucket.name}/{encoded}").content == name.encode()


def test_copy_rewrite_and_compose(bucket: storage.Bucket, client: storage.Client) -> None:
    first, second = bucket.blob("part-1"), bucket.blob("part-2")
    first.upload_from_string(b"hello ", content_type="text/plain")
    second.upload_from_string(b"world")
    copy = bucket.copy_blob(first, bucket, "copied")
    assert (copy.download_as_bytes(), copy.content_type) == (b"hello ", "text/plain")
    rewritten = bucket.blob("rewritten")
    token, written, total = rewritten.rewrite(second)
    assert (token, written, total) == (None, 5, 5)
    composed = bucket.blob("composed")
    composed.compose([first, second])
    composed.reload()
    assert composed.download_as_bytes() == b"hello world"
    assert (composed.crc32c, composed.md5_hash, composed.component_count) == (_crc32c(b"hello world"), None, 2)
    with pytest.raises(exceptions.NotFound, match="No such object: .*/missing"):
        bucket.copy_blob(bucket.blob("missing"), bucket, "never")


def test_batch_deletes_and_copies_report_each_result(bucket: storage.Bucket, client: storage.Client) -> None:
    for name in ("x", "y"):
        bucket.blob(name).upload_from_string(name)
    with client.batch(raise_exception=False) as batch:
        bucket.delete_blob("x")
        bucket.delete_blob("never-existed")
        bucket.copy_blob(bucket.blob("y"), bucket, "y-copy")
    assert [response.status_code for response in batch._responses] == [204, 404, 200]
    assert json.loads(batch._responses[1].content)["error"]["message"].startswith("No such object:")
    assert sorted(b.name for b in client.list_blobs(bucket)) == ["y", "y-copy"]


def test_xml_reads_with_ranges_like_tensorflow(
    bucket: storage.Bucket, server: StorageServer, http: requests.Session
) -> None:
    server.put_object(bucket.name, "ten", b"0123456789")
    server.put_object(bucket.name, "empty", b"")
    url = f"{server.url}/{bucket.name}/ten"
    partial = http.get(url, headers={"Range": "bytes=2-5"})
    assert (partial.status_code, partial.content, partial.headers["Content-Range"]) == (206, b"2345", "bytes 2-5/10")
    assert http.get(url, headers={"Range": "bytes=8-67108863"}).content == b"89"
    assert http.get(url, headers={"Range": "bytes=-3"}).content == b"789"
    beyond = http.get(url, headers={"Range": "bytes=10-20"})
    assert (beyond.status_code, beyond.headers["Content-Range"]) == (416, "bytes */10")
    assert b"<Code>InvalidRange</Code>" in beyond.content
    empty = http.get(f"{server.url}/{bucket.name}/empty", headers={"Range": "bytes=0-100"})
    assert (empty.status_code, empty.headers["Content-Range"]) == (416, "bytes */0")
    whole = http.get(url)
    assert whole.headers["x-goog-hash"] == f"crc32c={_crc32c(b'0123456789')},md5={_md5(b'0123456789')}"
    missing = http.get(f"{server.url}/{bucket.name}/nope")
    assert missing.status_code == 404 and b"<Code>NoSuchKey</Code>" in missing.content
    assert b"No such object: " + bucket.name.encode() + b"/nope" in missing.content


def test_missing_objects_are_missing_for_every_call(bucket: storage.Bucket, server: StorageServer) -> None:
    blob = bucket.blob("absent/thing")
    assert not blob.exists()
    assert bucket.get_blob("absent/thing") is None
    with pytest.raises(exceptions.NotFound, match=f"No such object: {bucket.name}/absent/thing"):
        blob.download_as_bytes()
    with pytest.raises(exceptions.NotFound):
        blob.delete()
    with pytest.raises(exceptions.NotFound):
        blob.patch()
    assert server.object_names(bucket.name) == []


def test_gzip_objects_are_transcoded_for_clients_that_do_not_accept_gzip(
    bucket: storage.Bucket, server: StorageServer, http: requests.Session
) -> None:
    blob = bucket.blob("log.txt")
    blob.content_encoding = "gzip"
    blob.upload_from_string(gzip.compress(b"plain text"), content_type="text/plain")
    url = f"{server.url}/{bucket.name}/log.txt"
    assert http.get(url, headers={"Accept-Encoding": "identity"}).content == b"plain text"
    raw = http.get(url, headers={"Accept-Encoding": "gzip"}, stream=True).raw.read()
    assert gzip.decompress(raw) == b"plain text"


def test_require_auth_answers_401_like_gcs_and_records_identities(http: requests.Session) -> None:
    tokens = TokenRegistry()
    token = tokens.issue("reader@p.iam.gserviceaccount.com").token
    with StorageServer(tokens, require_auth=True) as server:
        server.create_bucket("private")
        server.put_object("private", "o", b"secret")
        url = f"{server.url}/storage/v1/b/private/o/o"
        anonymous = http.get(url)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["message"].startswith(
            "Anonymous caller does not have storage.objects.get access to the Google Cloud Storage object."
        )
        assert http.get(url, headers={"Authorization": "Bearer forged"}).json()["error"]["message"] == (
            "Invalid Credentials"
        )
        assert http.get(url, params={"alt": "media"}, headers={"Authorization": f"Bearer {token}"}).content == (
            b"secret"
        )
        assert [(r.status, r.identity) for r in server.requests] == [
            (401, None),
            (401, None),
            (200, "reader@p.iam.gserviceaccount.com"),
        ]
