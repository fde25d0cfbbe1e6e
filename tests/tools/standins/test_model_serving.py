"""The real exported model (models/, trained briefly on the configured data) behind the fake Vertex AI endpoint.

configs/smoke_instances.json goes through the SDK, the fake service and the TF Serving stand-in to
the model's serving_default, as `make promote` sends it to a real endpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from google.cloud import aiplatform

from components.serving_checks import prediction_problems
from models.label import TASK
from tests.components.conftest import configured_data, model_uri, transformed  # noqa: F401 (a real export, once)
from tests.tools.standins.saved_models import upload_folder
from tools.standins.fixtures import TF_SERVING_IMAGE, VertexStandins

SMOKE_INSTANCES = Path(__file__).resolve().parents[3] / "configs" / "smoke_instances.json"


def test_the_exported_model_answers_the_smoke_instances(vertex_env: VertexStandins, model_uri: Path) -> None:  # noqa: F811
    artifacts = upload_folder(vertex_env.storage_client(), model_uri / "Format-Serving", "gs://models/my-model/1")
    model = aiplatform.Model.upload(
        serving_container_image_uri=TF_SERVING_IMAGE,
        artifact_uri=artifacts,
        model_id="my-model",
        display_name="my-model",
    )
    endpoint = model.deploy(machine_type="n1-standard-2")
    instances = json.loads(SMOKE_INSTANCES.read_text())

    answer = endpoint.predict(instances=instances)

    assert prediction_problems(list(answer.predictions), len(instances), TASK) == []
