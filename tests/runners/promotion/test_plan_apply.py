"""Plan, approve, apply (docs/promotion.md): `promote ... --dry-run --plan-file F` then `promote apply
--plan F`, against the fake Vertex AI server through the real SDK, and the one-line refusals before
any change (a registry or endpoint that moved since the plan, other settings, malformed arguments).

Registered versions are the tiny "good" SavedModel (conftest.py), served by the TF Serving stand-in;
its warm replica is shared with test_promote.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.cloud import aiplatform
from google.cloud.aiplatform_v1.types import Model
from google.protobuf import field_mask_pb2

from pipeline.config import vertex_config_path
from runners import errors
from tests.infra.vertex_permissions import permissions_used, role_permissions
from tests.runners.promotion.versions import DEV, ENDPOINT, MODEL, Result, aliases, changes, in_production, traffic
from tools.standins.fixtures import VertexStandins


def one_line_refusal(result: Result, start: str) -> str:
    """The refusal's text, after checking it is one line starting `error: <start>` with exit 2."""
    assert result.status == errors.EXIT_BAD_INPUT, result.out + result.err
    assert result.err.count("\n") == 1 and result.err.startswith(f"error: {start}"), result.err
    return result.err


def test_the_plan_resolves_the_alias_and_apply_runs_exactly_it(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    plan = tmp_path / "plan.json"
    mark = len(vertex_env.server.requests)

    planned = promote("canary", "--alias", "candidate", "--traffic", "10", "--dry-run", "--plan-file", str(plan))

    assert planned.status == errors.EXIT_OK, planned.err
    assert changes(vertex_env, mark) == []
    assert "Plan: canary of v2 with 10% of the traffic" in planned.out
    assert "  note: alias candidate names v2 now; the plan deploys v2 wherever the alias moves" in planned.out
    assert "  v2 labels: blessed=true" in planned.out
    document = json.loads(plan.read_text())
    assert document["request"] == {
        "command": "canary",
        "version": "2",
        "traffic": 10,
        "asked": "--alias candidate --traffic 10",
    }
    assert document["state"]["aliases"] == {"default": "1", "production": "1", "candidate": "2"}

    applied = promote("apply", "--plan", str(plan))

    assert applied.status == errors.EXIT_OK, applied.err
    assert applied.out.startswith("Applying the plan of ")
    assert "  note: requested as `canary --alias candidate --traffic 10`" in applied.out
    assert "Done: the canary passed the smoke test. Traffic: v1 90%, v2 10%" in applied.out
    assert traffic(vertex_env) == {"1": 90, "2": 10}
    assert changes(vertex_env, mark) == ["POST endpoints.deployModel"]

    # The same file again: the state it was made from is gone, so nothing runs a second time.
    again = promote("apply", "--plan", str(plan))
    refusal = one_line_refusal(again, "apply refused: the registry or the endpoint changed since the plan of ")
    assert f"deployed models v1 ({MODEL}, deployed model " in refusal and "nothing was changed: plan again" in refusal


def test_apply_refuses_when_the_alias_moved_after_the_plan(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    plan = tmp_path / "plan.json"
    assert (
        promote("canary", "--alias", "candidate", "--traffic", "10", "--dry-run", "--plan-file", str(plan)).status == 0
    )
    register(3)  # a pipeline run registers a new candidate while the plan waits for approval
    mark = len(vertex_env.server.requests)

    refusal = one_line_refusal(promote("apply", "--plan", str(plan)), "apply refused: the registry or the endpoint")

    assert "(alias candidate v2 -> v3; new version v3)" in refusal
    assert changes(vertex_env, mark) == []
    assert traffic(vertex_env) == {"1": 100}


def test_apply_refuses_when_traffic_labels_or_aliases_were_changed_by_hand(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    assert promote("canary", "--version", "2", "--traffic", "10").status == errors.EXIT_OK
    plan = tmp_path / "finish.json"
    assert promote("finish", "--dry-run", "--plan-file", str(plan)).status == errors.EXIT_OK
    endpoint = aiplatform.Endpoint(ENDPOINT)
    ids = {deployed.model_version_id: deployed.id for deployed in endpoint.gca_resource.deployed_models}

    endpoint.update(traffic_split={ids["1"]: 80, ids["2"]: 20})  # by hand, after the plan
    refusal = one_line_refusal(promote("apply", "--plan", str(plan)), "apply refused")
    assert "(traffic split v1 90%, v2 10% -> v1 80%, v2 20%)" in refusal

    endpoint.update(traffic_split={ids["1"]: 90, ids["2"]: 10})  # back as planned: only the labels differ
    version_2 = aiplatform.Model(MODEL, version="2")
    version_2.api_client.update_model(
        model=Model(name=f"{version_2.resource_name}@2", labels={"blessed": "true", "reviewed": "no"}),
        update_mask=field_mask_pb2.FieldMask(paths=["labels"]),
    )
    refusal = one_line_refusal(promote("apply", "--plan", str(plan)), "apply refused")
    assert "(labels of v2 blessed=true -> blessed=true, reviewed=no)" in refusal

    mark = len(vertex_env.server.requests)
    aiplatform.models.ModelRegistry(MODEL).add_version_aliases(["previous-production"], version="2")
    refusal = one_line_refusal(promote("apply", "--plan", str(plan)), "apply refused")
    assert "alias previous-production (none) -> v2" in refusal
    assert changes(vertex_env, mark) == ["POST models.mergeVersionAliases"]  # the change by hand, nothing else
    assert traffic(vertex_env) == {"1": 90, "2": 10}
    assert aliases(vertex_env)["production"] == "1"


def test_apply_refuses_a_plan_made_for_other_settings(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    plan = tmp_path / "plan.json"
    assert promote("canary", "--version", "2", "--traffic", "10", "--dry-run", "--plan-file", str(plan)).status == 0
    settings = yaml.safe_load(vertex_config_path("dev").read_text())
    bigger = "n1-highmem-16" if DEV.endpoint.machine_type != "n1-highmem-16" else "n1-highmem-32"
    settings["endpoint"]["machine_type"] = bigger
    other = tmp_path / "vertex-dev-bigger.yaml"
    other.write_text(yaml.safe_dump(settings))
    mark = len(vertex_env.server.requests)

    refusal = one_line_refusal(promote("apply", "--plan", str(plan), config=other), "apply refused: the plan of ")

    changed = f"(machine_type '{DEV.endpoint.machine_type}' -> '{bigger}')"
    assert f"made for another target or other settings {changed}" in refusal
    assert vertex_env.server.requests[mark:] == []  # refused before any call


def test_a_plan_with_nothing_to_do_applies_as_nothing_to_do(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    in_production(vertex_env, promote, register, 1)
    plan = tmp_path / "plan.json"
    planned = promote("rollback", "--dry-run", "--plan-file", str(plan))
    assert planned.status == errors.EXIT_OK and "Nothing to do: nothing to roll back" in planned.out
    mark = len(vertex_env.server.requests)

    applied = promote("apply", "--plan", str(plan))

    assert applied.status == errors.EXIT_OK, applied.err
    assert applied.out.startswith("Nothing to do: nothing to roll back: no version carries alias previous-production")
    assert changes(vertex_env, mark) == []


def test_a_refused_plan_writes_no_plan_file_and_removes_an_older_one(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2, blessed=False)
    plan = tmp_path / "plan.json"
    plan.write_text("{}")  # an older plan at the same path

    result = promote("canary", "--alias", "candidate", "--traffic", "10", "--dry-run", "--plan-file", str(plan))

    one_line_refusal(result, "canary refused: v2 carries no label blessed=true")
    assert not plan.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--traffic", "-5"), "argument --traffic: the canary's share is a whole number from 1 to 99 (got '-5')"),
        (("--traffic", "0"), "argument --traffic: the canary's share is a whole number from 1 to 99 (got '0')"),
        (("--traffic", "101"), "argument --traffic: the canary's share is a whole number from 1 to 99 (got '101')"),
        (("--traffic", "ten"), "argument --traffic: the canary's share is a whole number from 1 to 99 (got 'ten')"),
    ],
)
def test_the_first_canary_refuses_a_share_outside_1_to_99(
    vertex_env: VertexStandins, promote, register, args: tuple[str, ...], message: str
) -> None:
    register(1)  # nothing in production yet: a valid share would deploy v1 with all the traffic
    mark = len(vertex_env.server.requests)

    result = promote("canary", "--version", "1", *args)

    assert one_line_refusal(result, "promote canary: ") == f"error: promote canary: {message}\n"
    assert vertex_env.server.requests[mark:] == []  # refused before any call
    assert vertex_env.models.endpoints() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--version", "2@production"), "argument --version: a version ID is a whole number such as 7 (got '2@prod"),
        (("--version", "v2"), "argument --version: a version ID is a whole number such as 7 (got 'v2')"),
        (("--alias", "Candidate"), "argument --alias: an alias is a lowercase letter, then letters, digits and '-'"),
        (("--alias", "2"), "argument --alias: an alias is a lowercase letter"),
    ],
)
def test_malformed_versions_and_aliases_are_refused_in_one_line(
    vertex_env: VertexStandins, promote, args: tuple[str, ...], message: str
) -> None:
    result = promote("canary", *args, "--traffic", "10")
    assert one_line_refusal(result, "promote canary: ").startswith(f"error: promote canary: {message}")
    assert vertex_env.server.requests == []


def test_each_identity_makes_only_the_calls_its_role_allows(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    """What the code really calls, held against infra/iam.tf: ModelRegistration's upload against
    tfxPipelineRunner (and nothing that moves traffic or an existing version's alias), a plan against
    the read-only tfxPromotionPlanner, apply against tfxModelPromoter."""
    server = vertex_env.server  # .requests: a copy of what it received so far
    pipeline, planner, promoter = [], [], []

    def plan_and_apply(*args: str) -> None:
        plan = tmp_path / "plan.json"
        mark = len(server.requests)
        assert promote(*args, "--dry-run", "--plan-file", str(plan)).status == errors.EXIT_OK
        planner.extend(server.requests[mark:])
        mark = len(server.requests)
        assert promote("apply", "--plan", str(plan)).status == errors.EXIT_OK
        promoter.extend(server.requests[mark:])

    for version in (1, 2):
        mark = len(server.requests)
        register(version)  # as a run's ModelRegistration step: upload with the alias candidate
        pipeline.extend(server.requests[mark:])
        plan_and_apply("canary", "--alias", "candidate", "--traffic", "10")
        plan_and_apply("finish")
    plan_and_apply("rollback")
    assert traffic(vertex_env) == {"1": 100} and aliases(vertex_env)["production"] == "1"

    assert permissions_used(pipeline) <= role_permissions("tfxPipelineRunner")
    assert not permissions_used(pipeline) & {"aiplatform.models.update", "aiplatform.endpoints.update"}
    assert {request.route for request in pipeline} >= {"models.upload"}
    assert {"aiplatform.models.list", "aiplatform.endpoints.get"} <= permissions_used(planner)
    assert permissions_used(planner) <= role_permissions("tfxPromotionPlanner")
    used = permissions_used(promoter)
    assert used <= role_permissions("tfxModelPromoter")
    assert {"aiplatform.endpoints.deploy", "aiplatform.endpoints.undeploy", "aiplatform.models.update"} <= used


def test_nothing_registered_yet_is_refused_in_one_line(vertex_env: VertexStandins, promote, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    result = promote("canary", "--alias", "candidate", "--traffic", "10", "--dry-run", "--plan-file", str(plan))
    one_line_refusal(result, f"canary refused: model {MODEL} is not in the Model Registry of {DEV.runner.project}")
    assert not plan.exists()
