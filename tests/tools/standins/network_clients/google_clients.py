"""google-cloud-storage, Beam's httplib2 client and gRPC, unmodified, with only the rehearsal network's env.

Usage: python google_clients.py BUCKET PROJECT. Asserts what must hold and prints a JSON report.
"""

import json
import sys

import google.auth
import grpc
import requests
from apache_beam.internal import http_client
from google.api_core.exceptions import NotFound
from google.auth.transport import grpc as google_auth_grpc
from google.auth.transport.requests import Request
from google.cloud import storage
from google_auth_httplib2 import AuthorizedHttp

bucket_name, project = sys.argv[1], sys.argv[2]
report: dict[str, object] = {}

# (b) google-cloud-storage with default credentials from the metadata server.
credentials, default_project = google.auth.default()
credentials.refresh(Request())  # asks the metadata server who we are and for a token
report["credentials"] = type(credentials).__module__
report["default_project"] = default_project
report["service_account"] = credentials.service_account_email
client = storage.Client()
assert client.project == project
bucket = client.bucket(bucket_name)
bucket.blob("gcs/hello.txt").upload_from_string(b"hello from google-cloud-storage")
bucket.blob("gcs/scratch.txt").upload_from_string(b"to be deleted")
assert sorted(b.name for b in client.list_blobs(bucket_name, prefix="gcs/")) == ["gcs/hello.txt", "gcs/scratch.txt"]
assert bucket.blob("gcs/hello.txt").exists()
assert bucket.blob("gcs/hello.txt").download_as_bytes() == b"hello from google-cloud-storage"
bucket.blob("gcs/scratch.txt").delete()

# (g) missing objects.
missing = bucket.blob("gcs/missing.txt")
assert not missing.exists() and bucket.get_blob("gcs/missing.txt") is None
try:
    missing.download_as_bytes()
except NotFound as error:
    report["missing_message"] = error.message
else:
    raise AssertionError("downloading a missing object did not raise NotFound")

# (d) httplib2 through Beam's http_client (what apitools' Dataflow client uses), authorised like Beam does.
http = AuthorizedHttp(credentials, http=http_client.get_new_http())
response, content = http.request(f"https://dataflow.googleapis.com/v1b3/projects/{project}/jobs", "GET")
assert response.status == 200, (response.status, content)
report["dataflow_answer"] = json.loads(content)

# (e) gRPC over TLS through the proxy: plain TLS, then with the metadata server's token.
with grpc.secure_channel("echo.googleapis.com:443", grpc.ssl_channel_credentials()) as channel:
    assert channel.unary_unary("/rehearsal.Echo/Echo")(b"ping", timeout=20) == b"echo:ping"
scoped = credentials.with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
with google_auth_grpc.secure_authorized_channel(scoped, Request(), "echo.googleapis.com:443") as channel:
    assert channel.unary_unary("/rehearsal.Echo/Echo")(b"with-token", timeout=20) == b"echo:with-token"

# (f) hosts nobody routed are refused by the proxy.
try:
    requests.get("https://unrouted.googleapis.com/v1/anything", timeout=20)
except requests.exceptions.ProxyError:
    report["unrouted_https"] = "refused"
with grpc.secure_channel("unrouted-grpc.googleapis.com:443", grpc.ssl_channel_credentials()) as channel:
    try:
        channel.unary_unary("/rehearsal.Echo/Echo")(b"ping", timeout=5)
    except grpc.RpcError as error:
        report["unrouted_grpc"] = error.code().name
print(json.dumps(report))
