"""The taxi example's own tests: a fork rewrites these for its model (README "Make it yours").

What the example's schema/ and configs/ hold for the components: the drift thresholds of the taxi
schema, its float features, the serving instances of the taxi model, and the registry its Vertex AI
environments upload to. The same checks derived from any configuration: tests/components/.
"""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import drift
from components.registration.settings import TF_SERVING
from pipeline.config import BASE_CONFIG, load_config, vertex_config_path
from pipeline.deploy_config import SmokeTestConfig
from pipeline.paths import REPO_ROOT
from runners.promotion.smoke import load_instances

pytestmark = pytest.mark.example

TAXI_SCHEMA = REPO_ROOT / "schema" / "schema.pbtxt"


def taxi_schema() -> schema_pb2.Schema:
    return text_format.Parse(TAXI_SCHEMA.read_text(encoding="utf-8"), schema_pb2.Schema())


def test_the_taxi_schema_sets_drift_thresholds_for_the_label_sources_and_key_features() -> None:
    config = drift.drift_config(taxi_schema(), "schema/schema.pbtxt")
    thresholds = {
        comparator.path.step[0]: comparator.distribution_comparator
        for comparator in config.default_slice_config.feature
    }
    assert {"tips", "fare", "trip_miles", "trip_seconds", "payment_type", "company"} <= set(thresholds)
    for label_source in ("tips", "fare"):
        divergence = thresholds[label_source].jensen_shannon_divergence
        assert 0 < divergence.threshold < 1
        assert divergence.source.type == schema_pb2.HistogramSelection.QUANTILES  # not swung by one outlier
    assert 0 < thresholds["payment_type"].infinity_norm.threshold < 1


def test_the_taxi_schemas_amounts_and_coordinates_are_floats() -> None:
    floats = {feature.name for feature in taxi_schema().feature if feature.type == schema_pb2.FLOAT}
    assert floats >= {"fare", "tips", "trip_miles", "pickup_latitude"}


def test_the_taxi_serving_instances() -> None:
    instances = load_instances(SmokeTestConfig().instances_path)
    assert len(instances) == 8
    assert {type(instances[0][key]) for key in ("payment_type", "company")} == {str}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_vertex_configs_serve_with_tf_serving_from_the_projects_mirror(env: str) -> None:
    config = load_config([BASE_CONFIG, vertex_config_path(env)])
    assert config.registry is not None
    project = config.runner.project
    assert config.registry.serving_container == TF_SERVING
    assert config.registry.serving_image.startswith(
        f"us-central1-docker.pkg.dev/{project}/dockerhub/tensorflow/serving@sha256:"
    )
    assert config.registry.models_bucket == f"gs://{project}-models"
    assert not config.runner.pipeline_root.startswith(config.registry.models_bucket)
