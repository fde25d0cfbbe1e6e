"""The drift check in the compiled Vertex AI spec: BaselineStatistics and TFX's DistributionValidator
run before the ValidationGate, which Transform and the Trainer wait for, with the schema's thresholds;
they are compiled iff the curated schema sets drift thresholds (the taxi schema does: tests/example/).

The compiled steps themselves run against the stand-ins in tests/tools/standins/test_drift_on_vertex.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tfx.proto import distribution_validator_pb2
from tfx.utils import proto_utils

from components.drift import drift_config_from_file
from pipeline import pipeline as tfx_pipeline
from pipeline.paths import in_repository
from tests.pipeline.expected import DRIFT_STEPS, schema_sets_drift_thresholds, vertex_config
from tools.refresh_golden import ENVIRONMENTS


def tasks_of(document: dict[str, Any]) -> dict[str, Any]:
    return document["pipelineSpec"]["root"]["dag"]["tasks"]


def producer(task: dict[str, Any], key: str) -> tuple[str, str]:
    source = task["inputs"]["artifacts"][key]["taskOutputArtifact"]
    return source["producerTask"], source["outputArtifactKey"]


def parameter(task: dict[str, Any], name: str) -> str:
    return task["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]["stringValue"]


def upstream(tasks: dict[str, Any], name: str) -> set[str]:
    """Every task `name` waits for, directly or not."""
    found: set[str] = set()
    waiting = list(tasks[name].get("dependentTasks", []))
    while waiting:
        task = waiting.pop()
        if task not in found:
            found.add(task)
            waiting.extend(tasks[task].get("dependentTasks", []))
    return found


def needs_drift_thresholds(env: str) -> None:
    if not schema_sets_drift_thresholds(vertex_config(env)):
        pytest.skip("the curated schema sets no drift thresholds, so no drift check is compiled (checked above)")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_drift_check_is_compiled_iff_the_schema_sets_thresholds(
    env: str, spec_documents: dict[str, dict[str, Any]]
) -> None:
    tasks = tasks_of(spec_documents[env])
    thresholds = schema_sets_drift_thresholds(vertex_config(env))
    assert set(tasks) & DRIFT_STEPS == (DRIFT_STEPS if thresholds else set())
    assert ("drift" in tasks[tfx_pipeline.VALIDATION_GATE]["inputs"]["artifacts"]) is thresholds


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_gate_waits_for_the_drift_check_which_does_not_wait_for_training(
    env: str, spec_documents: dict[str, dict[str, Any]]
) -> None:
    needs_drift_thresholds(env)
    tasks = tasks_of(spec_documents[env])
    baseline, validator = tasks[tfx_pipeline.BASELINE_STATISTICS], tasks[tfx_pipeline.DISTRIBUTION_VALIDATOR]
    assert producer(baseline, "statistics") == (tfx_pipeline.STATISTICS_GEN, "statistics")
    assert upstream(tasks, tfx_pipeline.BASELINE_STATISTICS) == {tfx_pipeline.STATISTICS_GEN, tfx_pipeline.EXAMPLE_GEN}
    assert producer(validator, "statistics") == (tfx_pipeline.STATISTICS_GEN, "statistics")
    assert producer(validator, "baseline_statistics") == (tfx_pipeline.BASELINE_STATISTICS, "baseline_statistics")
    gate = tasks[tfx_pipeline.VALIDATION_GATE]
    assert producer(gate, "drift") == (tfx_pipeline.DISTRIBUTION_VALIDATOR, "anomalies")
    for step in (tfx_pipeline.TRANSFORM, tfx_pipeline.TRAINER):
        assert {tfx_pipeline.VALIDATION_GATE, tfx_pipeline.DISTRIBUTION_VALIDATOR} <= upstream(tasks, step)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_compiled_steps_carry_the_schema_thresholds_and_the_baseline_rule(
    env: str, spec_documents: dict[str, dict[str, Any]]
) -> None:
    needs_drift_thresholds(env)
    spec = spec_documents[env]["pipelineSpec"]
    tasks = tasks_of(spec_documents[env])
    schema_path = vertex_config(env).schema_path
    compiled = proto_utils.json_to_proto(
        parameter(tasks[tfx_pipeline.DISTRIBUTION_VALIDATOR], "distribution_validator_config"),
        distribution_validator_pb2.DistributionValidatorConfig(),
    )
    assert compiled == drift_config_from_file(in_repository(schema_path), schema_path)
    assert compiled.default_slice_config.feature  # at least one threshold
    # The same registry model, pipeline and rule as BaselineModel's.
    source = json.loads(parameter(tasks[tfx_pipeline.BASELINE_STATISTICS], "source"))
    assert source == json.loads(parameter(tasks[tfx_pipeline.BASELINE_RESOLVER], "source"))
    assert source["kind"] == "model_registry"
    assert parameter(tasks[tfx_pipeline.BASELINE_STATISTICS], "statistics_step") == tfx_pipeline.STATISTICS_GEN
    executors = spec["deploymentSpec"]["executors"]
    for step, executor in (
        (tfx_pipeline.BASELINE_STATISTICS, "components.baseline.statistics.Executor"),
        (tfx_pipeline.DISTRIBUTION_VALIDATOR, "components.drift.Executor"),
    ):
        label = spec["components"][step]["executorLabel"]
        assert executor in executors[label]["container"]["args"]
