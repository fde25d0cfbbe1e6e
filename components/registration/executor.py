"""What the registration step does: nothing for an unblessed model; otherwise a serving smoke test
of the SavedModel, then (with a registry configured) its copy in the models bucket
(models_bucket.py) and the upload of that copy as a new registry version."""

from __future__ import annotations

import json
from typing import Any

from absl import logging
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import eval_metrics
from components.registration.models_bucket import ModelCopyError, copy_to_models_bucket
from components.registration.settings import TF_SERVING, RegistrySettings
from components.registration.upload import (
    RegisteredVersion,
    pipeline_job_id,
    provenance_labels,
    register_version,
    version_description,
)
from components.serving_checks import Task
from components.smoke_test import read_examples, run_smoke_test

# Inputs, exec properties and the output of the component (see component.py).
MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
EXAMPLES_KEY = "examples"
EVALUATION_KEY = "evaluation"
REGISTRY_KEY = "registry"
SMOKE_EXAMPLES_KEY = "smoke_examples"
TASK_KEY = "task"
SERVING_INSTANCES_KEY = "serving_instances"
REGISTERED_MODEL_KEY = "registered_model"

EVAL_SPLIT = "eval"
RECORD_FILE = "registration.json"


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        blessing = artifact_utils.get_single_instance(input_dict[MODEL_BLESSING_KEY])
        output = artifact_utils.get_single_instance(output_dict[REGISTERED_MODEL_KEY])

        if not model_utils.is_model_blessed(blessing):
            logging.info(
                "Model %s is not registered: the Evaluator did not bless it (blessing %s)", model.uri, blessing.uri
            )
            _record(output, reason="not blessed by the Evaluator")
            return

        task = Task.from_json(exec_properties[TASK_KEY])
        instances = json.loads(exec_properties.get(SERVING_INSTANCES_KEY) or "[]")
        model_dir = path_utils.serving_model_path(model.uri)
        eval_dir = artifact_utils.get_split_uri(input_dict[EXAMPLES_KEY], EVAL_SPLIT)
        rows = read_examples(eval_dir, int(exec_properties[SMOKE_EXAMPLES_KEY]))
        result = run_smoke_test(model_dir, rows, task, instances)
        logging.info("Serving smoke test of %s %s", model_dir, result.summary())
        output.set_string_custom_property("smoke_test", result.summary())

        settings = RegistrySettings.from_json(exec_properties.get(REGISTRY_KEY) or "")
        if settings is None:
            logging.info("No registry configured: model %s passed the smoke test and is not uploaded", model_dir)
            _record(output, reason="no registry configured (smoke test only)")
            return
        evaluations = input_dict.get(EVALUATION_KEY) or []
        metrics = overall_metrics(evaluations[0].uri, task) if evaluations else {}
        labels = provenance_labels(settings, output.uri)
        artifact_uri = registered_artifacts(settings, model_dir, pipeline_job_id(settings.pipeline_root, output.uri))
        version = register_version(settings, artifact_uri, labels, version_description(metrics, task))
        logging.info("Registered %s as %s with labels %s", artifact_uri, version.versioned_name, labels)
        _record(output, version=version, labels=labels, artifact_uri=artifact_uri)


def registered_artifacts(settings: RegistrySettings, model_dir: str, job_id: str | None) -> str:
    """What the registry version points at: the SavedModel's copy in the models bucket, in the
    serving container's layout; without a models bucket, the SavedModel where the Trainer wrote it."""
    if settings.models_bucket:
        return copy_to_models_bucket(settings, model_dir, job_id).artifact_uri
    if settings.serving_container == TF_SERVING:
        raise ModelCopyError("registry.models_bucket is required with serving_container tf-serving (version folders)")
    logging.warning("No models bucket: the version points into the pipeline root (%s)", model_dir)
    return model_dir


def _record(
    output: types.Artifact,
    *,
    version: RegisteredVersion | None = None,
    labels: dict[str, str] | None = None,
    reason: str | None = None,
    artifact_uri: str | None = None,
) -> None:
    """Custom properties in the PushedModel convention (`pushed`, `pushed_destination`,
    `pushed_version`) plus the registry's names, and the same as JSON in the artifact folder."""
    details: dict[str, Any] = {"registered": version is not None}
    output.set_int_custom_property("pushed", int(version is not None))
    if version is None:
        output.set_string_custom_property("reason", reason or "")
        details["reason"] = reason
    else:
        output.set_string_custom_property("pushed_destination", version.versioned_name)
        output.set_string_custom_property("pushed_version", version.version_id)
        output.set_string_custom_property("model_version_name", version.versioned_name)
        output.set_string_custom_property("model_version_id", version.version_id)
        output.set_string_custom_property("model_artifact_uri", artifact_uri or "")
        details.update(
            model=version.model, version_id=version.version_id, labels=labels or {}, artifact_uri=artifact_uri
        )
    fileio.makedirs(output.uri)
    with fileio.open(f"{output.uri}/{RECORD_FILE}", "w") as record:
        record.write(json.dumps(details, indent=2, sort_keys=True))


def overall_metrics(evaluation_uri: str, task: Task) -> dict[str, float | None]:
    """The candidate's metrics over the whole eval split ({} if unreadable: they only describe the version)."""
    import tensorflow as tf

    try:
        return eval_metrics.overall_metrics(evaluation_uri, task)
    except (OSError, ValueError, tf.errors.OpError) as error:
        logging.warning("Cannot read eval metrics from %s: %s", evaluation_uri, error)
        return {}
