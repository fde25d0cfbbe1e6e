"""The plan file of `promote ... --dry-run --plan-file F`: what it records, how it reads back, and how
`apply` words the differences it refuses on (no cloud calls; tests/runners/promotion/test_plan_apply.py
runs plan and apply against the stand-ins)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runners.promotion import plan as plans
from runners.promotion.plan_file import (
    FORMAT,
    PlanFileError,
    Request,
    plan_file,
    read_plan,
    state_changes,
    step_record,
    target_changes,
    target_settings,
    write_plan,
)
from runners.promotion.state import Deployment, State
from runners.promotion.vertex import Target
from tests.runners.promotion.versions import DEV, MODEL

ENDPOINT = f"projects/p/locations/us-central1/endpoints/{DEV.endpoint.endpoint_id}"
BLESSED = {"blessed": "true"}


def state(traffic: dict[str, int] | None = None, labels: dict | None = None, **aliases: str) -> State:
    deployments = tuple(
        Deployment(f"dm-{version}", MODEL, version, percent) for version, percent in (traffic or {}).items()
    )
    named = {alias.replace("_", "-"): version for alias, version in aliases.items()}
    versions = labels if labels is not None else {version: dict(BLESSED) for version in {"1", "2", *named.values()}}
    return State(MODEL, ENDPOINT, traffic is not None, named, deployments, versions)


def dev_target() -> Target:
    return Target.of(DEV)


def test_steps_are_recorded_with_their_kind_and_fields() -> None:
    assert step_record(plans.CreateEndpoint()) == {"step": "create-endpoint"}
    assert step_record(plans.Deploy("2", {"1": 90, "2": 10})) == {
        "step": "deploy",
        "version": "2",
        "traffic": {"1": 90, "2": 10},
    }
    assert step_record(plans.MoveAliases("2", add=("production", "default"))) == {
        "step": "move-aliases",
        "version": "2",
        "add": ["production", "default"],
        "remove": [],
    }
    assert step_record(plans.SmokeTest("2", 10)) == {"step": "smoke-test", "version": "2", "traffic": 10}
    assert step_record(plans.Undeploy("1", {})) == {"step": "undeploy", "version": "1", "traffic": {}}
    assert step_record(plans.SetTraffic({"2": 100})) == {"step": "set-traffic", "traffic": {"2": 100}}


def test_a_plan_file_reads_back_as_written(tmp_path: Path) -> None:
    before = state({"1": 100}, production="1", candidate="2")
    plan = plans.plan_canary(before, "2", 10)
    request = Request("canary", "2", 10, "--alias candidate --traffic 10")
    written = plan_file(request, dev_target(), plan, before, None)
    path = tmp_path / "plan.json"

    write_plan(path, written)

    document = json.loads(path.read_text())
    assert document["format"] == FORMAT
    assert document["request"] == {
        "command": "canary",
        "version": "2",
        "traffic": 10,
        "asked": "--alias candidate --traffic 10",
    }
    assert [step["step"] for step in document["steps"]] == ["deploy", "smoke-test"]
    assert document["lines"][0] == "Plan: canary of v2 with 10% of the traffic"
    assert document["target"]["endpoint"].endswith(f"/endpoints/{DEV.endpoint.endpoint_id}")
    assert read_plan(path) == written
    assert state_changes(read_plan(path).state, before) == []


def test_a_state_with_nothing_to_do_is_a_plan_without_steps(tmp_path: Path) -> None:
    now = state({"1": 100}, production="1")
    written = plan_file(Request("finish"), dev_target(), None, now, "nothing to finish: no canary is deployed")
    write_plan(tmp_path / "plan.json", written)
    again = read_plan(tmp_path / "plan.json")
    assert (again.steps, again.nothing_to_do) == ((), "nothing to finish: no canary is deployed")
    assert again.lines == ("Nothing to do: nothing to finish: no canary is deployed",)


def test_every_change_apply_refuses_on_is_named() -> None:
    planned = state({"1": 90, "2": 10}, production="1", candidate="2")

    assert state_changes(planned, planned) == []
    moved = state({"1": 90, "2": 10}, production="1", candidate="3")
    assert state_changes(planned, moved) == ["alias candidate v2 -> v3", "new version v3"]
    ramped = state({"1": 80, "2": 20}, production="1", candidate="2")
    assert state_changes(planned, ramped) == ["traffic split v1 90%, v2 10% -> v1 80%, v2 20%"]
    undeployed = state({"1": 100}, production="1", candidate="2")
    assert state_changes(planned, undeployed) == [
        f"deployed models v1 ({MODEL}, deployed model dm-1), v2 ({MODEL}, deployed model dm-2) -> "
        f"v1 ({MODEL}, deployed model dm-1)"
    ]
    relabelled = state({"1": 90, "2": 10}, {"1": BLESSED, "2": {"blessed": "false"}}, production="1", candidate="2")
    assert state_changes(planned, relabelled) == ["labels of v2 blessed=true -> blessed=false"]
    gone = state(None, {"1": BLESSED}, production="1")
    assert state_changes(planned, gone) == [
        "the endpoint was deleted",
        "alias candidate v2 -> (none)",
        f"deployed models v1 ({MODEL}, deployed model dm-1), v2 ({MODEL}, deployed model dm-2) -> none",
        "v2 was deleted",
    ]


def test_other_settings_are_named() -> None:
    planned = target_settings(dev_target())
    other_machine = "n1-highmem-16" if planned["machine_type"] != "n1-highmem-16" else "n1-highmem-32"
    now = {**planned, "machine_type": other_machine, "endpoint": "projects/p/locations/r/endpoints/other"}
    assert target_changes(planned, planned) == []
    assert target_changes(planned, now) == [
        f"endpoint {planned['endpoint']!r} -> 'projects/p/locations/r/endpoints/other'",
        f"machine_type {planned['machine_type']!r} -> {other_machine!r}",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read the plan {path}: No such file or directory"),
        ("{not json", "{path} is not a plan file (not JSON: Expecting property name"),
        ('{"format": "something-else"}', "{path} is not a plan file of this version (tfx-promotion-plan/1)"),
        (f'{{"format": "{FORMAT}", "request": {{"command": "canary"}}}}', "{path} is not a complete plan file"),
        (
            f'{{"format": "{FORMAT}", "request": {{"command": "deploy-everything"}}, "target": {{}}}}',
            "{path} is not a complete plan file (ValueError: unknown command 'deploy-everything')",
        ),
    ],
)
def test_unusable_plan_files_are_refused_in_one_line(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "plan.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(PlanFileError) as error:
        read_plan(path)
    assert str(error.value).startswith(message.format(path=path))
    assert "\n" not in str(error.value)
