"""The taxi example's own tests: a fork rewrites these for its model (README "Make it yours").

The values of the example's configs/: its name, its data (the taxi sample inside tfx), how it is
judged, its Vertex AI environments and its smoke instances. The rules every config follows, and
what the pipeline makes of them: tests/pipeline/test_config.py.
"""

import json
import re

import pytest

from pipeline.config import load_config
from pipeline.paths import REPO_ROOT
from tests.pipeline.expected import vertex_config

pytestmark = pytest.mark.example


def test_the_example_is_taxi_tips_on_the_taxi_sample() -> None:
    config = load_config()
    assert config.pipeline_name == "taxi-tips"
    assert config.data.path is None  # the taxi sample shipped in the tfx package
    assert config.schema_path == "schema/schema.pbtxt"
    assert config.evaluation.slice_features == ["trip_start_hour"]
    assert config.data.missing_tokens == ("", "NA", "N/A", "null")


def test_the_example_blesses_on_auc_from_0_9_to_0_995() -> None:
    blessing = load_config().evaluation.blessing
    assert (blessing.metric, blessing.minimum, blessing.maximum, blessing.max_drop) == ("auc", 0.9, 0.995, 0.01)
    assert load_config().evaluation.metrics == []


def test_the_example_has_eight_smoke_instances_of_taxi_trips() -> None:
    config = load_config()
    instances = json.loads(config.serving_instances_path.read_text())
    assert len(instances) == 8
    assert {"fare", "trip_start_hour", "payment_type", "company"} <= set(instances[0])


def test_the_readmes_predict_request_sends_the_first_two_smoke_instances() -> None:
    """The body the README shows for calling the endpoint (the rehearsal sends the smoke instances so:
    tests/tools/rehearsal/test_rehearsal.py)."""
    readme = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"<!-- predict-request -->\s*```json\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md: the predict request example is missing"
    instances = json.loads(load_config().serving_instances_path.read_text())
    assert json.loads(match.group(1)) == {"instances": instances[:2]}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_example_vertex_environments(env: str) -> None:
    config = vertex_config(env)
    runner = config.runner
    assert config.data.path == f"gs://my-tfx-{env}-data/taxi-tips"
    assert runner.project == f"my-tfx-{env}" and runner.region == "us-central1"
    assert runner.pipeline_root == f"gs://my-tfx-{env}-pipelines/taxi-tips"
    assert runner.service_account == f"tfx-pipelines@my-tfx-{env}.iam.gserviceaccount.com"
    assert runner.labels == {"app": "taxi-tips", "env": env}
    assert runner.dataflow_temp_location == f"gs://my-tfx-{env}-pipelines/taxi-tips/dataflow/tmp"
    assert runner.dataflow_staging_location == f"gs://my-tfx-{env}-pipelines/taxi-tips/dataflow/staging"
    assert (config.registry.model_id, config.registry.display_name) == ("taxi-tips", "taxi-tips")
    assert config.registry.serving_container == "tf-serving"
    assert config.endpoint.endpoint_id == f"taxi-tips-{env}"


def test_dev_trains_on_n1_standard_4_and_prod_runs_mondays() -> None:
    dev, prod = vertex_config("dev").runner, vertex_config("prod").runner
    assert dev.training.machine_type == "n1-standard-4"
    assert dev.dataflow.max_workers == 4
    assert prod.schedule.cron == "TZ=Etc/UTC 0 3 * * 1"
