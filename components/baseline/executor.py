"""What BaselineModel does: finds this pipeline's newest registered model other than the candidate
and hands it on as its output, or says that there is none.

Found: the output artifact takes the model's URI (and `baseline_found` = 1, `registered_as`), so the
Evaluator reads the registered model's own files and ML Metadata shows which model it was. Vertex AI
records an output URI that the executor changed, as KFP's launcher does (its executor_output.json
`uri` replaces the generated one); the local orchestrator publishes it too (with a TFX warning that
the URI changed).

None: the local orchestrator publishes no artifact for an emptied output list, so the Evaluator gets
no baseline. A Vertex AI step always records its output artifact, so there it is marked
`baseline_found` = 0 (with the `reason`), and components/baseline/evaluator.py leaves it out.
"""

from __future__ import annotations

from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components.baseline import sources
from components.baseline.sources import LocalMetadataSource, NoSource, RegisteredModel, RegistrySource

CANDIDATE_KEY = "candidate"
SOURCE_KEY = "source"
BASELINE_KEY = "baseline_model"
FOUND_KEY = "baseline_found"
REGISTERED_AS_KEY = "registered_as"
REASON_KEY = "reason"


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        candidate = artifact_utils.get_single_instance(input_dict[CANDIDATE_KEY])
        source = sources.from_json(exec_properties[SOURCE_KEY])
        outputs = output_dict[BASELINE_KEY]
        output = artifact_utils.get_single_instance(outputs)
        found = find_baseline(source, candidate.uri)
        if found is None:
            reason = source.reason if isinstance(source, NoSource) else "no model of this pipeline was registered yet"
            logging.info("No baseline model (%s): the Evaluator judges %s on its own", reason, candidate.uri)
            output.set_int_custom_property(FOUND_KEY, 0)
            output.set_string_custom_property(REASON_KEY, reason)
            if isinstance(source, LocalMetadataSource):
                outputs.clear()
                _remove_if_empty(output.uri)
            return
        logging.info("Baseline model: %s (%s)", found.uri, found.registered_as)
        _remove_if_empty(output.uri)
        output.uri = found.uri
        output.set_int_custom_property(FOUND_KEY, 1)
        output.set_string_custom_property(REGISTERED_AS_KEY, found.registered_as)


def find_baseline(source: sources.BaselineSource, candidate_uri: str) -> RegisteredModel | None:
    if isinstance(source, LocalMetadataSource):
        from components.baseline.local_metadata import latest_pushed_model

        return latest_pushed_model(source, candidate_uri)
    if isinstance(source, RegistrySource):
        from components.baseline.model_registry import latest_registered_model

        return latest_registered_model(source, candidate_uri)
    return None


def _remove_if_empty(folder: str) -> None:
    """The folder the orchestrator made for the output before the executor ran, now unused."""
    if fileio.isdir(folder) and not fileio.listdir(folder):
        fileio.rmtree(folder)


def is_no_baseline_marker(artifact: types.Artifact) -> bool:
    """The output of a BaselineModel step that found none (as Vertex AI records it)."""
    return artifact.has_custom_property(FOUND_KEY) and artifact.get_int_custom_property(FOUND_KEY) == 0
