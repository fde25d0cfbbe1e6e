"""The compiled drift check, run as Vertex AI runs it: BaselineStatistics, TFX's DistributionValidator
and the ValidationGate of tests/example/golden/dev.json, in the pipeline image, through TFX's
KFP container entrypoint, as the pipeline's service account, reaching the Model Registry, the
pipeline jobs and Cloud Storage at Google's host names through the stand-ins' network.

StatisticsGen, SchemaGen and ExampleValidator are placeholders that point their outputs at
statistics, the curated schema and empty anomalies uploaded beforehand (as an executor may, see
test_executor_output_uri.py); Transform is a placeholder that only shows whether the gate let the
run through. The first run has no baseline; after its model is registered, a second run whose
drift-checked column (the first feature of the curated schema with a `drift_comparator`) holds one
value in every row is stopped at the gate, before Transform. Names and thresholds come from
configs/ and schema/, so that this holds in a fork; without drift thresholds in the schema there is
no drift check to run.
"""

from __future__ import annotations

import copy
import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tensorflow_data_validation as tfdv
from google.cloud import aiplatform

from pipeline.paths import REPO_ROOT
from tests.pipeline.expected import curated_schema, schema_sets_drift_thresholds
from tests.runners.columns import rarest_value, read_table
from tests.tools.standins.pipeline_jobs import (
    BUCKET,
    DEV,
    FIRST_JOB,
    PIPELINE_IMAGE_REPOSITORY,
    PROJECT,
    REGION,
    SECOND_JOB,
    SERVING_IMAGE,
    run_dev_job,
)
from tools.refresh_golden import golden_path
from tools.rehearsal.cloud import LocalCloud
from tools.standins.fixtures import aiplatform_configured

MODEL_ID = DEV.registry.model_id if DEV.registry else None
FIXTURES = f"gs://{BUCKET}/fixtures"
COMPILED = ("BaselineStatistics", "DistributionValidator", "ValidationGate")
SPLITS = '["train", "eval"]'

# A placeholder step: its outputs point at the folders given as JSON in argv[2] (key -> uri, metadata).
PLACEHOLDER = """
import json, sys
from google.cloud import storage
executor_input, pointed = json.loads(sys.argv[1]), json.loads(sys.argv[2])
written = {"artifacts": {}}
for key, listed in executor_input["outputs"]["artifacts"].items():
    written["artifacts"][key] = {"artifacts": [{**listed["artifacts"][0], **pointed.get(key, {})}]}
bucket, _, name = executor_input["outputs"]["outputFile"].removeprefix("gs://").partition("/")
storage.Client(project="my-tfx-dev").bucket(bucket).blob(name).upload_from_string(json.dumps(written))
"""


def spec_with_the_compiled_drift_steps(image: str, statistics: str) -> dict[str, Any]:
    """The golden's drift steps and gate, with placeholders around them; StatisticsGen points at `statistics`."""
    golden = json.loads(golden_path("dev").read_text())["pipelineSpec"]
    title = {"artifactType": {"schemaTitle": "tfx.Schema"}}
    placeholders = {
        "StatisticsGen": {"statistics": {"uri": statistics, "metadata": {"split_names": SPLITS}}},
        "SchemaGen": {"schema": {"uri": f"{FIXTURES}/schema"}},
        "ExampleValidator": {"anomalies": {"uri": f"{FIXTURES}/anomalies", "metadata": {"split_names": SPLITS}}},
        "Transform": {},
    }
    components: dict[str, Any] = {name: copy.deepcopy(golden["components"][name]) for name in COMPILED}
    executors = {
        f"{name}_executor": copy.deepcopy(golden["deploymentSpec"]["executors"][f"{name}_executor"])
        for name in COMPILED
    }
    for name in COMPILED:
        executors[f"{name}_executor"]["container"]["image"] = image
    for name, pointed in placeholders.items():
        outputs = copy.deepcopy(golden["components"][name].get("outputDefinitions", {}))
        components[name] = {"executorLabel": f"{name}_executor", "outputDefinitions": outputs}
        command = ["python", "-c", PLACEHOLDER, "{{$}}", json.dumps(pointed)]
        executors[f"{name}_executor"] = {"container": {"image": image, "command": command}}
    components["Transform"]["inputDefinitions"] = {"artifacts": {"schema": title}}
    tasks = {name: copy.deepcopy(golden["root"]["dag"]["tasks"][name]) for name in COMPILED}
    tasks.update({name: {} for name in ("StatisticsGen", "SchemaGen", "ExampleValidator")})
    gate_output = {"producerTask": "ValidationGate", "outputArtifactKey": "validated_schema"}
    tasks["Transform"] = {"inputs": {"artifacts": {"schema": {"taskOutputArtifact": gate_output}}}}
    for name, task in tasks.items():
        task.update(componentRef={"name": name}, taskInfo={"name": name}, cachingOptions={"enableCache": False})
        task.pop("dependentTasks", None)  # the stand-in derives them from the inputs
    return {
        "pipelineInfo": golden["pipelineInfo"],
        "schemaVersion": golden["schemaVersion"],
        "sdkVersion": golden["sdkVersion"],
        "components": components,
        "deploymentSpec": {"executors": executors},
        "root": {"dag": {"tasks": tasks}},
    }


def drift_checked() -> tuple[str, float]:
    """The first feature the curated schema sets a drift threshold on, and that threshold."""
    if not schema_sets_drift_thresholds(DEV) or MODEL_ID is None:
        pytest.skip("no drift check is compiled: the curated schema sets no drift thresholds or there is no registry")
    for feature in curated_schema(DEV).feature:
        comparator = feature.drift_comparator
        if comparator.HasField("jensen_shannon_divergence"):
            return feature.name, comparator.jensen_shannon_divergence.threshold
        if comparator.HasField("infinity_norm"):
            return feature.name, comparator.infinity_norm.threshold
    raise AssertionError("a drift_comparator without a threshold")


@pytest.fixture(scope="module")
def statistics(small_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Serialized statistics (TFDV, reading the CSV as TFX's own CsvExampleGen does on Vertex AI) of
    the configured data, and of the same rows with the drift-checked column's rarest value in every row."""
    column, _ = drift_checked()
    work = tmp_path_factory.mktemp("drift-on-vertex")
    with (small_data_dir / "data.csv").open(newline="") as file:
        header, *rows = list(csv.reader(file))
    at, value = header.index(column), rarest_value(read_table(small_data_dir), column)
    broken = work / "broken.csv"
    with broken.open("w", newline="") as file:
        csv.writer(file).writerows([header] + [[*row[:at], value, *row[at + 1 :]] for row in rows])
    return {
        "data": tfdv.generate_statistics_from_csv(str(small_data_dir / "data.csv")).SerializeToString(),
        "broken": tfdv.generate_statistics_from_csv(str(broken)).SerializeToString(),
    }


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, statistics: dict[str, bytes]) -> Iterator[tuple[LocalCloud, str]]:
    state = tmp_path_factory.mktemp("cloud")
    with LocalCloud(state / "cloud", PROJECT, REGION) as cloud:
        storage = cloud.network.storage
        storage.create_bucket(BUCKET, project=PROJECT, location=REGION)
        for name, serialized in statistics.items():
            for split in ("train", "eval"):
                storage.put_object(BUCKET, f"fixtures/{name}/Split-{split}/FeatureStats.pb", serialized)
                storage.put_object(BUCKET, f"fixtures/anomalies/Split-{split}/SchemaDiff.pb", b"")  # none
        storage.put_object(BUCKET, "fixtures/schema/schema.pbtxt", (REPO_ROOT / "schema" / "schema.pbtxt").read_bytes())
        image = cloud.push_pipeline_image(PIPELINE_IMAGE_REPOSITORY)
        with aiplatform_configured(api_endpoint=cloud.vertex_url, project=PROJECT, location=REGION):
            yield cloud, image


def test_drifted_data_is_stopped_at_the_gate_on_vertex(cloud: tuple[LocalCloud, str]) -> None:
    local_cloud, image = cloud
    column, threshold = drift_checked()
    first = run_dev_job(local_cloud, spec_with_the_compiled_drift_steps(image, f"{FIXTURES}/data"), FIRST_JOB)

    # Nothing registered yet: the comparison is skipped, and the gate says so.
    assert {name: task.state.name for name, task in first.items() if task.task_name in COMPILED} == dict.fromkeys(
        COMPILED, "SUCCEEDED"
    )
    (marker,) = first["DistributionValidator"].inputs["baseline_statistics"].artifacts
    assert marker.metadata["baseline_found"] == 0
    (validated,) = first["ValidationGate"].outputs["validated_schema"].artifacts
    assert validated.metadata["drift_check"] == "skipped: no model of this pipeline was registered yet"
    assert first["Transform"].state.name == "SUCCEEDED"

    aiplatform.Model.upload(
        model_id=MODEL_ID,
        display_name=MODEL_ID,
        artifact_uri=f"gs://my-tfx-dev-models/{MODEL_ID}/{first['StatisticsGen'].task_id}",
        serving_container_image_uri=SERVING_IMAGE,
        labels={"blessed": "true", "pipeline_job": FIRST_JOB},
    )
    second = run_dev_job(local_cloud, spec_with_the_compiled_drift_steps(image, f"{FIXTURES}/broken"), SECOND_JOB)

    # The data of the registered model: the first run's StatisticsGen output, read from its task details.
    (baseline,) = second["DistributionValidator"].inputs["baseline_statistics"].artifacts
    assert baseline.uri == first["StatisticsGen"].outputs["statistics"].artifacts[0].uri == f"{FIXTURES}/data"
    assert baseline.metadata["data_of"].endswith(f"{MODEL_ID}@1 (run {FIRST_JOB})")
    assert second["ValidationGate"].state.name == "FAILED"
    assert "Transform" not in second  # never started
    log = Path(second["ValidationGate"].error.message.rsplit("check the logs: ", 1)[1]).read_text()
    assert (
        "the data differs from the data the current model was trained on: 1 feature moved beyond the drift "
        f"thresholds of schema/schema.pbtxt ({column}); the run stopped before Transform\n"
    ) in log
    moved = re.search(
        rf"\n  {re.escape(column)} \[train, eval vs the baseline's data\]: the distribution moved by "
        r"(?:Jensen-Shannon divergence|L-infinity distance) ([\d.e-]+)(?:, most in the share of [^\n]+)? "
        r"\(allowed ([\d.e-]+)\)\n  compared with the data of projects/",
        log,
    )
    assert moved, log
    assert float(moved[1]) > threshold == float(moved[2])
