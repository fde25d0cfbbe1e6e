"""How tools/refresh_golden.py normalizes a compiled spec before comparing it with a golden one
(the taxi example's goldens and their comparison: tests/example/test_golden.py)."""

from __future__ import annotations

from typing import Any

from tests.pipeline.expected import vertex_config
from tools.refresh_golden import normalize, render


def test_normalization_hides_only_versions_and_fingerprints(spec_documents: dict[str, dict[str, Any]]) -> None:
    document = spec_documents["dev"]
    normalized = normalize(document)
    assert normalized["pipelineSpec"]["sdkVersion"] == "tfx-<version>"
    assert document["pipelineSpec"]["sdkVersion"].startswith("tfx-1.")
    assert normalized["labels"]["tfx_version"] == "<version>"
    assert normalized["labels"]["tfx_runner"] == "kubeflow_v2"
    text = render(document)
    assert text.count('\\"source_fingerprint\\": \\"<fingerprint>\\"') == 2  # Transform and Trainer
    # Every step whose code is in this repository carries one as a parameter (pipeline/fingerprint.py).
    tasks = normalized["pipelineSpec"]["root"]["dag"]["tasks"]
    hidden = {
        name: task["inputs"]["parameters"]["source_fingerprint"]["runtimeValue"]["constantValue"]["stringValue"]
        for name, task in tasks.items()
        if "source_fingerprint" in task.get("inputs", {}).get("parameters", {})
    }
    own_code = {"CsvExampleGen", "SchemaGen", "ValidationGate", "BaselineModel", "Evaluator", "ModelRegistration"}
    assert own_code <= hidden.keys() and set(hidden.values()) == {"<fingerprint>"}
    # The substance stays.
    assert f"--project={vertex_config('dev').runner.project}" in text and "--runner=DataflowRunner" in text
