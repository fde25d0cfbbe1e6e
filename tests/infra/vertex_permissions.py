"""The IAM permission each Vertex AI REST call checks, and the custom roles of infra/iam.tf: to hold the
calls an identity's code really makes (recorded by the stand-in) against the role it gets.

Permissions from the Vertex AI REST reference ("IAM Permissions" of each method) and its IAM
permissions table: deployModel checks `endpoints.deploy`, undeployModel `endpoints.undeploy`,
endpoints.patch (the traffic split) `endpoints.update`, mergeVersionAliases and models.patch
`models.update`, models.upload `models.upload` on the location. A long-running operation is polled
with the get permission of the resource it belongs to (`.../models/ID/operations/N`).
"""

from __future__ import annotations

from collections.abc import Iterable

from tests.infra.terraform import resources
from tools.standins.vertex_server import RecordedRequest

PERMISSION_OF_ROUTE = {
    "models.upload": "aiplatform.models.upload",
    "models.list": "aiplatform.models.list",
    "models.listVersions": "aiplatform.models.list",
    "models.get": "aiplatform.models.get",
    "models.mergeVersionAliases": "aiplatform.models.update",
    "models.patch": "aiplatform.models.update",
    "endpoints.create": "aiplatform.endpoints.create",
    "endpoints.list": "aiplatform.endpoints.list",
    "endpoints.get": "aiplatform.endpoints.get",
    "endpoints.patch": "aiplatform.endpoints.update",
    "endpoints.deployModel": "aiplatform.endpoints.deploy",
    "endpoints.undeployModel": "aiplatform.endpoints.undeploy",
    "endpoints.predict": "aiplatform.endpoints.predict",
    "pipelineJobs.create": "aiplatform.pipelineJobs.create",
    "pipelineJobs.get": "aiplatform.pipelineJobs.get",
}


def permissions_used(requests: Iterable[RecordedRequest]) -> set[str]:
    used = set()
    for request in requests:
        if request.route == "operations.get":
            kind = "models" if "/models/" in request.path else "endpoints"
            used.add(f"aiplatform.{kind}.get")
        else:
            assert request.route in PERMISSION_OF_ROUTE, f"no permission known for {request.route}"
            used.add(PERMISSION_OF_ROUTE[request.route])
    return used


def role_permissions(role_id: str) -> set[str]:
    """The permissions of the custom role `role_id` in infra/iam.tf."""
    (role,) = [body for body in resources("google_project_iam_custom_role").values() if body["role_id"] == role_id]
    return set(role["permissions"])
