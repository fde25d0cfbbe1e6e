"""The taxi example's own tests: a fork rewrites these for its model (README "Make it yours").

What the pipeline built from the example's configs/ and schema/ holds: the taxi sample as data, its
outputs under taxi-tips, AUC as the blessing metric, and the drift check the taxi schema asks for.
The same checks derived from any configuration: tests/pipeline/.
"""

from pathlib import Path
from typing import Any

import pytest
import tensorflow_model_analysis as tfma

from pipeline import pipeline as tfx_pipeline
from pipeline.config import load_config
from pipeline.data import example_data_dir
from tests.pipeline.expected import DRIFT_STEPS, schema_sets_drift_thresholds
from tools.refresh_golden import ENVIRONMENTS

pytestmark = pytest.mark.example


@pytest.fixture
def built(tmp_path: Path):
    config = load_config(overrides={"runner.output_dir": str(tmp_path)})
    return config, tfx_pipeline.create_pipeline(config)


def test_the_example_reads_the_taxi_sample_inside_tfx(built) -> None:
    _, pipeline = built
    example_gen = next(c for c in pipeline.components if c.id == tfx_pipeline.EXAMPLE_GEN)
    assert Path(example_gen.exec_properties["input_base"]) == example_data_dir()


def test_the_example_writes_under_taxi_tips(built, tmp_path: Path) -> None:
    _, pipeline = built
    assert pipeline.pipeline_info.pipeline_root == str(tmp_path / "pipelines" / "taxi-tips")
    assert pipeline.metadata_connection_config.sqlite.filename_uri == str(
        tmp_path / "metadata" / "taxi-tips" / "metadata.sqlite"
    )


def test_the_example_blesses_on_auc_overall_from_0_9_to_0_995(built) -> None:
    config, _ = built
    (spec,) = tfx_pipeline.eval_config(config).metrics_specs
    metrics = {m.class_name: m for m in spec.metrics}
    # MeanLabel tells slices holding one class (AUC undefined there) apart.
    assert set(metrics) == {"AUC", "ExampleCount", "MeanLabel"}
    (overall,) = metrics["AUC"].per_slice_thresholds
    assert list(overall.slicing_specs) == [tfma.SlicingSpec()]
    bounds = overall.threshold.value_threshold
    assert (bounds.lower_bound.value, bounds.upper_bound.value) == (0.9, 0.995)


def test_the_taxi_schema_sets_drift_thresholds_so_the_example_checks_drift(built) -> None:
    config, pipeline = built
    assert schema_sets_drift_thresholds(config)
    by_id = {c.id: c for c in pipeline.components}
    assert set(by_id) >= DRIFT_STEPS
    gate_inputs = {u.id for u in by_id[tfx_pipeline.VALIDATION_GATE].upstream_nodes}
    assert tfx_pipeline.DISTRIBUTION_VALIDATOR in gate_inputs
    thresholds = tfx_pipeline.drift_thresholds(config)
    # The label's source columns among them.
    assert {"tips", "fare"} <= {comparator.path.step[0] for comparator in thresholds.default_slice_config.feature}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_compiled_spec_is_the_taxi_pipeline(env: str, example_specs: dict[str, dict[str, Any]]) -> None:
    spec = example_specs[env]
    assert spec["pipelineSpec"]["pipelineInfo"]["name"] == "taxi-tips"
    assert spec["runtimeConfig"]["gcsOutputDirectory"] == f"gs://my-tfx-{env}-pipelines/taxi-tips"
