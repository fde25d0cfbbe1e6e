"""`python -m pipeline promote` against the fake Vertex AI server, through the real SDK.

Every registered version is a real tiny SavedModel with the model's serving signatures (its raw
features typed by the curated schema, the answer of its task; versions.py), served by the TF
Serving stand-in: the smoke test sends configs/smoke_instances.json to it. A version that fails the
smoke test is a model that does: `serving_default` taking serialized examples, an op that fails at
run time, a slow answer, or answers outside what the task allows (probabilities above 1). The
endpoint routes each predict request at random by the traffic split (seeded,
`ModelsSurface.seed_routing`); what the stand-in records as served
(`ModelsSurface.predictions`) is what the smoke test's report must add up to.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import vertex_config_path
from runners import cli, errors
from runners.promotion.smoke import load_instances
from tests.runners.promotion.versions import (
    COLD_START_LIMIT_MS,
    COLD_START_SECONDS,
    DEV,
    ENDPOINT,
    MODEL,
    OUT_OF_RANGE_PROBLEM,
    SMOKE_INSTANCES,
    aliases,
    changes,
    in_production,
    traffic,
)
from tools.standins.fixtures import VertexStandins


def smoke_test_config(folder: Path, **smoke_test: Any) -> Path:
    """configs/vertex-dev.yaml with these endpoint.smoke_test settings."""
    settings = yaml.safe_load(vertex_config_path("dev").read_text())
    settings["endpoint"]["smoke_test"].update(smoke_test)
    path = folder / "vertex-dev-smoke-test.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def tight_smoke_test(folder: Path) -> Path:
    """configs/vertex-dev.yaml with at least 10 smoke-test predictions, p95 within 200 ms."""
    return smoke_test_config(folder, min_predictions=10, max_latency_ms=200)


def test_canary_finish_rollback(vertex_env: VertexStandins, promote, register) -> None:
    register(1)
    first = promote("canary", "--alias", "candidate", "--traffic", "10")
    assert first.status == errors.EXIT_OK, first.err
    assert "no version is in production yet: v1 gets all the traffic" in first.out
    assert traffic(vertex_env) == {"1": 100}
    assert promote("finish").status == errors.EXIT_OK
    assert aliases(vertex_env) == {"default": "1", "production": "1", "candidate": "1"}

    register(2)
    canary = promote("canary", "--alias", "candidate", "--traffic", "10")
    assert canary.status == errors.EXIT_OK, canary.err
    assert "Done: the canary passed the smoke test. Traffic: v1 90%, v2 10%" in canary.out
    assert traffic(vertex_env) == {"1": 90, "2": 10}
    assert aliases(vertex_env) == {"default": "1", "production": "1", "candidate": "2"}
    endpoint = vertex_env.models.endpoint(ENDPOINT)
    canary_deployment = next(d for d in endpoint.deployments if d.version_id == "2")
    assert canary_deployment.model.endswith(f"/locations/{DEV.runner.region}/models/{MODEL}")
    deployed = endpoint.resource["deployedModels"][1]
    assert deployed["displayName"] == f"{MODEL}-v2"
    assert deployed["dedicatedResources"]["machineSpec"] == {"machineType": DEV.endpoint.machine_type}
    assert {r.version_id for r in vertex_env.models.predictions} == {"1", "2"}  # the canary answered

    finish = promote("finish")
    assert finish.status == errors.EXIT_OK, finish.err
    assert traffic(vertex_env) == {"2": 100}  # v1 undeployed
    assert aliases(vertex_env) == {
        "production": "2",
        "default": "2",
        "candidate": "2",
        "previous-production": "1",
    }

    rollback = promote("rollback")
    assert rollback.status == errors.EXIT_OK, rollback.err
    assert "Plan: give production back to v1 (replacing v2)" in rollback.out
    assert traffic(vertex_env) == {"1": 100}
    assert aliases(vertex_env) == {"production": "1", "default": "1", "candidate": "2"}
    again = promote("rollback")
    assert (again.status, again.out.strip()) == (
        errors.EXIT_OK,
        "Nothing to do: nothing to roll back: no version carries alias previous-production; "
        "traffic v1 100%, aliases production v1, candidate v2",
    )


def test_finish_twice_changes_nothing_the_second_time(vertex_env: VertexStandins, promote, register) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    promote("canary", "--version", "2", "--traffic", "10")
    assert promote("finish").status == errors.EXIT_OK
    before = (traffic(vertex_env), aliases(vertex_env), vertex_env.models.endpoint(ENDPOINT).resource)
    mark = len(vertex_env.server.requests)

    second = promote("finish")

    assert second.status == errors.EXIT_OK
    assert "nothing to finish: no canary is deployed" in second.out
    assert changes(vertex_env, mark) == []
    assert (traffic(vertex_env), aliases(vertex_env), vertex_env.models.endpoint(ENDPOINT).resource) == before


def test_dry_run_prints_the_plan_and_changes_nothing(vertex_env: VertexStandins, promote, register) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    mark = len(vertex_env.server.requests)

    result = promote("canary", "--version", "2", "--traffic", "25", "--dry-run")

    assert result.status == errors.EXIT_OK
    lines = result.out.splitlines()
    assert lines[0] == "Plan: canary of v2 with 25% of the traffic"
    assert f"  endpoint: projects/{DEV.runner.project}/locations/{DEV.runner.region}/endpoints/{ENDPOINT}" in lines
    assert "  traffic:  v1 100%  ->  v1 75%, v2 25%" in lines
    assert lines[-1] == "Dry run: nothing was changed."
    assert changes(vertex_env, mark) == []
    assert traffic(vertex_env) == {"1": 100}


def test_an_unblessed_version_is_refused(vertex_env: VertexStandins, promote, register) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2, blessed=False)
    mark = len(vertex_env.server.requests)

    result = promote("canary", "--version", "2", "--traffic", "10")

    assert result.status == errors.EXIT_BAD_INPUT
    assert "v2 carries no label blessed=true" in result.err
    assert changes(vertex_env, mark) == []


def test_a_deploy_that_fails_midway_leaves_the_endpoint_as_before(
    vertex_env: VertexStandins, promote, register
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    before = vertex_env.models.endpoint(ENDPOINT).resource
    vertex_env.models.fail_next_deploy("Model server never became ready", polls=1)

    result = promote("canary", "--version", "2", "--traffic", "10")

    assert result.status == errors.EXIT_FAILED
    assert "never became ready" in result.err
    assert "Unchanged. Traffic: v1 100%" in result.out
    after = vertex_env.models.endpoint(ENDPOINT).resource
    assert {k: v for k, v in after.items() if k != "updateTime"} == {
        k: v for k, v in before.items() if k != "updateTime"
    }
    assert aliases(vertex_env)["production"] == "1"


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("examples_default", "requests failed, error rate"),  # TF Serving refuses the raw instances
        ("failing", "requests failed, error rate"),  # an op of the model fails
        ("slow", "v2 (canary): p95 latency"),
        ("out_of_range", f"response schema: prediction 0: {OUT_OF_RANGE_PROBLEM}"),
    ],
)
def test_a_failed_smoke_test_restores_the_traffic_and_undeploys_the_canary(
    vertex_env: VertexStandins, promote, register, tmp_path, model: str, reason: str
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2, model=model)
    config = tight_smoke_test(tmp_path)

    result = promote("canary", "--version", "2", "--traffic", "50", config=config)

    assert result.status == errors.EXIT_FAILED
    assert reason in result.out and "the smoke test of v2 failed" in result.err
    assert "restoring: undeploy v2 (leaving v1 100%)" in result.out
    assert traffic(vertex_env) == {"1": 100}
    assert aliases(vertex_env)["production"] == "1"


def test_a_ramp_that_fails_the_smoke_test_goes_back_to_the_share_before(
    vertex_env: VertexStandins, promote, register, tmp_path
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2, model="slow")
    assert promote("canary", "--version", "2", "--traffic", "10").status == errors.EXIT_OK  # within vertex-dev's 2 s

    result = promote("canary", "--version", "2", "--traffic", "50", config=tight_smoke_test(tmp_path))

    assert result.status == errors.EXIT_FAILED
    assert "v2 (canary): p95 latency" in result.out
    assert "restoring: set the traffic split to v1 90%, v2 10%" in result.out
    assert "v2 was deployed before this command and stays; `rollback` undeploys it" in result.out
    assert traffic(vertex_env) == {"1": 90, "2": 10}


def test_refuses_when_the_endpoint_disagrees_with_the_aliases(vertex_env: VertexStandins, promote, register) -> None:
    from google.cloud import aiplatform

    in_production(vertex_env, promote, register, 1)
    register(2)
    aiplatform.models.ModelRegistry(MODEL).add_version_aliases(["production"], version="2")  # by hand
    mark = len(vertex_env.server.requests)

    for args in (("canary", "--version", "2", "--traffic", "10"), ("finish",), ("rollback",)):
        result = promote(*args)
        assert result.status == errors.EXIT_BAD_INPUT
        assert "does not match the registry aliases: alias production names v2, which is not deployed" in result.err
        assert "Make them agree by hand" in result.err
    assert changes(vertex_env, mark) == []


def test_an_interrupted_finish_completes_when_run_again(vertex_env: VertexStandins, promote, register) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    promote("canary", "--version", "2", "--traffic", "10")
    vertex_env.server.fail_next("POST", r":mergeVersionAliases$", 503)

    stopped = promote("finish")

    assert stopped.status == errors.EXIT_FAILED
    assert "run `finish` again to complete it" in stopped.err
    assert traffic(vertex_env) == {"1": 0, "2": 100}  # traffic moved, v1 still deployed
    assert aliases(vertex_env)["production"] == "1"
    register(3)
    another = promote("canary", "--version", "3", "--traffic", "10")
    assert another.status == errors.EXIT_BAD_INPUT
    assert "v2 already serves 100% (an interrupted finish): run `finish`" in another.err

    resumed = promote("finish")

    assert resumed.status == errors.EXIT_OK, resumed.err
    assert "1. give v1 previous-production" in resumed.out and "set the traffic" not in resumed.out
    assert traffic(vertex_env) == {"2": 100}
    assert aliases(vertex_env) | {"candidate": "-"} == {
        "production": "2",
        "default": "2",
        "previous-production": "1",
        "candidate": "-",
    }


def test_rollback_during_a_canary_aborts_it(vertex_env: VertexStandins, promote, register) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    promote("canary", "--version", "2", "--traffic", "30")

    result = promote("rollback")

    assert result.status == errors.EXIT_OK
    assert "Plan: abort the canary of v2: v1 gets 100% again" in result.out
    assert traffic(vertex_env) == {"1": 100}
    assert aliases(vertex_env)["production"] == "1"


def test_rest_calls_of_each_step(vertex_env: VertexStandins, promote, register) -> None:
    """Which v1 REST calls the SDK makes for each promotion step (listed in runners/promotion/vertex.py)."""
    in_production(vertex_env, promote, register, 1)
    register(2)

    def calls(*args: str) -> list[str]:
        mark = len(vertex_env.server.requests)
        assert promote(*args).status == errors.EXIT_OK
        seen = [f"{r.method} {r.route}" for r in vertex_env.server.requests[mark:]]
        # The smoke test's predict requests, once.
        return [call for index, call in enumerate(seen) if call != "POST endpoints.predict" or seen[index - 1] != call]

    read_state = ["GET models.listVersions", "GET endpoints.get"]
    assert calls("canary", "--version", "2", "--traffic", "10") == [
        *read_state,  # listVersions gives every version's labels (blessed=true) and aliases
        "GET endpoints.get",  # deployed model IDs
        "GET models.get",  # the Model handed to Endpoint.deploy
        "POST endpoints.deployModel",  # trafficSplit {<v1 id>: 90, "0": 10}
        "GET endpoints.get",  # the SDK syncs the endpoint after the operation
        "GET endpoints.get",  # the smoke test reads the deployed models and their traffic
        "POST endpoints.predict",  # 89 times: enough for v2 at 10% to answer twice (docs/promotion.md)
        *read_state,  # the state printed at the end
    ]
    assert calls("finish") == [
        *read_state,
        "GET endpoints.get",
        "PATCH endpoints.patch",  # updateMask=trafficSplit: v2 100%
        "POST models.mergeVersionAliases",  # models/<model>@1: previous-production
        "POST models.mergeVersionAliases",  # models/<model>@2: production, default
        "GET endpoints.get",
        "POST endpoints.undeployModel",  # v1, trafficSplit {<v2 id>: 100}
        "GET endpoints.get",
        *read_state,
    ]
    assert calls("rollback") == [
        *read_state,
        "GET endpoints.get",
        "GET models.get",
        "POST endpoints.deployModel",  # v1 with trafficSplit {<v2 id>: 0, "0": 100}
        "GET endpoints.get",
        "POST models.mergeVersionAliases",  # models/<model>@1: production, default
        "POST models.mergeVersionAliases",  # models/<model>@1: -previous-production
        "GET endpoints.get",
        "POST endpoints.undeployModel",  # v2, trafficSplit {<v1 id>: 100}
        "GET endpoints.get",
        *read_state,
    ]


def served_since(env: VertexStandins, mark: int) -> Counter[str]:
    """Predict requests the stand-in's containers answered after the `mark`-th, per version."""
    return Counter(record.version_id for record in env.models.predictions[mark:] if record.status == 200)


def test_the_smoke_test_sends_enough_for_the_canary_and_reports_what_answered(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    vertex_env.models.seed_routing(20240601)
    mark = len(vertex_env.models.predictions)
    summary = tmp_path / "step-summary.md"
    summary.write_text("### Plan\n")

    result = promote("canary", "--version", "2", "--traffic", "10", "--summary-file", str(summary))

    assert result.status == errors.EXIT_OK, result.err
    # At 10% the canary answers 2 requests or more (1 warm-up + 1 timed) unless with odds 0.09%.
    assert "  smoke test: 89 predict requests: at least 50, and enough that v2 at 10% answers 2 of them" in result.out
    served = served_since(vertex_env, mark)
    assert sum(served.values()) == 89 and served["2"] >= 2
    ids = {d.version_id: d.deployed_model_id for d in vertex_env.models.endpoint(ENDPOINT).deployments}
    assert "  smoke test: passed; sent 89 requests (at least 50; v2 at 10% needs 2 answers" in result.out
    assert "    errors: 0 of 89 (0.0%, limit 0.0%)" in result.out
    for version, role in (("1", "v1"), ("2", "v2 (canary)")):
        answers = f"{served[version]} answers, {served[version] / 89:.1%} of the answers"
        assert f"    {role}, deployed model {ids[version]}: {answers}" in result.out
    markdown = summary.read_text()
    assert markdown.startswith("### Plan\n### Smoke test of v2 (10% of the traffic): passed\n")
    assert f"| {ids['2']} | v2 (canary) | 10% | {served['2']} | {served['2'] / 89:.1%} | 1 (" in markdown
    assert f"| {ids['1']} | v1 | 90% | {served['1']} | {served['1'] / 89:.1%} | 1 (" in markdown


def test_a_canary_share_the_smoke_test_cannot_reach_is_refused_before_any_change(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2)
    config = smoke_test_config(tmp_path, max_predictions=500)
    mark = len(vertex_env.server.requests)

    for dry_run in ((), ("--dry-run",)):
        result = promote("canary", "--version", "2", "--traffic", "1", *dry_run, config=config)
        assert result.status == errors.EXIT_BAD_INPUT
        assert result.err.startswith(
            "error: canary refused: at 1% of the traffic the smoke test needs 920 predict requests for v2"
        )
        assert "more than endpoint.smoke_test.max_predictions (500)" in result.err

    assert changes(vertex_env, mark) == []
    assert promote("canary", "--version", "2", "--traffic", "2", "--dry-run", config=config).status == errors.EXIT_OK


def test_a_canary_the_requests_miss_fails_the_smoke_test(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    """With a 10% miss probability allowed (22 requests at 10%), find a routing seed that misses the
    canary by asking the endpoint itself, then run the smoke test again under that seed."""
    from google.cloud import aiplatform

    in_production(vertex_env, promote, register, 1)
    register(2)
    assert promote("canary", "--version", "2", "--traffic", "10").status == errors.EXIT_OK
    config = smoke_test_config(tmp_path, min_predictions=1, warmup_answers=0, max_miss_probability=0.1)
    endpoint, instances = aiplatform.Endpoint(ENDPOINT), load_instances(SMOKE_INSTANCES)

    def misses_the_canary(seed: int) -> bool:
        vertex_env.models.seed_routing(seed)
        return all(endpoint.predict(instances=instances).model_version_id == "1" for _ in range(22))

    seed = next(seed for seed in range(200) if misses_the_canary(seed))
    vertex_env.models.seed_routing(seed)
    mark = len(vertex_env.models.predictions)

    # A summary file that cannot be written (a folder) is reported, and changes nothing else.
    result = promote("canary", "--version", "2", "--traffic", "10", "--summary-file", str(tmp_path), config=config)

    assert result.status == errors.EXIT_FAILED
    assert f"warning: cannot append the smoke test to {tmp_path}: Is a directory" in result.out
    assert served_since(vertex_env, mark) == {"1": 22}
    assert "FAILED: the canary v2 (deployed model" in result.out
    assert "answered 0 of 22 requests, fewer than the 1 it needs (1 timed); with 10% of the traffic" in result.out
    assert "v2 was deployed before this command and stays; `rollback` undeploys it" in result.out
    assert traffic(vertex_env) == {"1": 90, "2": 10}


def test_the_canarys_cold_start_is_left_out_of_its_latency(
    vertex_env: VertexStandins, promote, register, tmp_path: Path
) -> None:
    in_production(vertex_env, promote, register, 1)
    register(2, model="cold_start")
    mark = len(vertex_env.models.predictions)

    config = smoke_test_config(tmp_path, min_predictions=10, max_latency_ms=COLD_START_LIMIT_MS)

    result = promote("canary", "--version", "2", "--traffic", "50", config=config)

    assert result.status == errors.EXIT_OK, result.out
    canary = [record.latency_ms for record in vertex_env.models.predictions[mark:] if record.version_id == "2"]
    assert canary[0] >= COLD_START_SECONDS * 1000 > COLD_START_LIMIT_MS  # the cold start happened
    reported = re.search(r"v2 \(canary\), deployed model .* after 1 warm-up excluded \((\d+) ms\)", result.out)
    assert reported and int(reported.group(1)) >= COLD_START_SECONDS * 1000
    assert "Done: the canary passed the smoke test." in result.out


def test_promote_needs_the_registry_and_endpoint_sections(tmp_path, capsys) -> None:
    settings = yaml.safe_load(vertex_config_path("dev").read_text())
    settings.pop("endpoint")
    config = tmp_path / "no-endpoint.yaml"
    config.write_text(yaml.safe_dump(settings))

    status = cli.main(["promote", "--config", str(config), "finish"])

    assert status == errors.EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == (
        f"error: {config}: promote needs runner 'vertex' and the registry and endpoint sections"
    )
