"""The compiled specs equal the committed goldens (normalized, see refresh_golden.py)."""

from __future__ import annotations

import difflib
from typing import Any

import pytest

from tools.refresh_golden import ENVIRONMENTS, golden_path, normalize, render


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_compiled_spec_matches_golden(env: str, spec_documents: dict[str, dict[str, Any]]) -> None:
    expected = golden_path(env).read_text()
    actual = render(spec_documents[env])
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), f"golden/{env}.json", "compiled", lineterm="", n=2
        )
        pytest.fail(
            f"compiled {env} spec differs from golden/{env}.json; if intended, run `make golden` and review:\n"
            + "\n".join(list(diff)[:80])
        )


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
    assert "my-tfx-dev" in text and "DataflowRunner" in text  # the substance stays
