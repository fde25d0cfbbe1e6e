"""Each step's source fingerprint covers the code it can import, and reaches TFX's and Vertex AI's cache keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tfx.dsl.compiler import compiler

from pipeline import fingerprint
from pipeline import pipeline as tfx_pipeline
from pipeline.config import PipelineConfig, load_config
from pipeline.paths import REPO_ROOT
from tests.pipeline.expected import schema_sets_drift_thresholds

# A small project with the repository's package names, whose import graph the tests control.
PROJECT = {
    "models/__init__.py": "",
    "models/features.py": "KEYS = ['fare']\n",
    "models/model.py": "from models import features\nfrom components.fast.helper import speed_up\n",
    "components/__init__.py": "",
    "components/fast/__init__.py": "",
    "components/fast/helper.py": "def speed_up():\n    pass\n",
    "components/reader.py": "def read():\n    from . import util  # inside a function\n",
    "components/util.py": "SEPARATOR = ','\n",
    "components/uses_features.py": "from models.features import KEYS\n",
    "pipeline/__init__.py": "",
}
# As pipeline.create_components asks: the model's package whole for the Trainer, imports for the others.
STEPS = {
    "trainer": {"packages": ["models"], "modules": ["models.model"]},
    "reader": {"modules": ["components.reader"]},
    "uses_features": {"modules": ["components.uses_features"]},
}
PRINT_FINGERPRINTS = f"""
import json
from pipeline import fingerprint
steps = {STEPS!r}
print(json.dumps({{
    step: [fingerprint.code_fingerprint(**code), [name for name, _ in fingerprint.code_files(**code)]]
    for step, code in steps.items()
}}))
"""


def make_project(root: Path) -> Path:
    for name, text in PROJECT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "pipeline" / "fingerprint.py").symlink_to(REPO_ROOT / "pipeline" / "fingerprint.py")
    return root


def steps_in(project: Path) -> dict[str, tuple[str, list[str]]]:
    """Each step's fingerprint and files, computed by a fresh Python started in `project`."""
    result = subprocess.run(
        [sys.executable, "-c", PRINT_FINGERPRINTS], cwd=project, env={"PYTHONPATH": ""}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return {step: (digest, names) for step, (digest, names) in json.loads(result.stdout).items()}


def changed_steps(tmp_path: Path, change) -> set[str]:
    before = steps_in(make_project(tmp_path))
    change(tmp_path)
    after = steps_in(tmp_path)
    return {step for step in STEPS if after[step][0] != before[step][0]}


def test_each_step_covers_the_files_it_can_import(tmp_path: Path) -> None:
    files = {step: names for step, (_, names) in steps_in(make_project(tmp_path)).items()}
    assert files["trainer"] == [
        "components/__init__.py",
        "components/fast/__init__.py",
        "components/fast/helper.py",
        "models/__init__.py",
        "models/features.py",
        "models/model.py",
    ]
    assert files["reader"] == ["components/__init__.py", "components/reader.py", "components/util.py"]
    assert files["uses_features"] == [
        "components/__init__.py",
        "components/uses_features.py",
        "models/__init__.py",
        "models/features.py",
    ]


def test_a_new_module_under_models_changes_the_trainers_fingerprint_only(tmp_path: Path) -> None:
    # Not imported or named anywhere: no hand-kept list of modules would have seen it.
    def add_layers(project: Path) -> None:
        (project / "models" / "layers.py").write_text("DROPOUT = 0.1\n")

    assert changed_steps(tmp_path, add_layers) == {"trainer"}


@pytest.mark.parametrize(
    ("edited", "expected"),
    [
        ("models/features.py", {"trainer", "uses_features"}),
        ("components/util.py", {"reader"}),  # imported inside a function
        ("components/fast/helper.py", {"trainer"}),  # followed from models/ into components/
        ("components/__init__.py", {"trainer", "reader", "uses_features"}),  # runs on every import
    ],
)
def test_an_edit_changes_exactly_the_steps_that_import_the_file(tmp_path: Path, edited: str, expected) -> None:
    def edit(project: Path) -> None:
        with (project / edited).open("a") as file:
            file.write("# edited\n")

    assert changed_steps(tmp_path, edit) == expected


def test_caches_and_hidden_files_do_not_count(tmp_path: Path) -> None:
    def add_noise(project: Path) -> None:
        (project / "models" / "__pycache__").mkdir()
        (project / "models" / "__pycache__" / "model.cpython-310.pyc").write_bytes(b"\0")
        (project / "models" / ".model.py.swp").write_bytes(b"\0")

    assert changed_steps(tmp_path, add_noise) == set()


def test_relative_imports_resolve(tmp_path: Path) -> None:
    source = tmp_path / "executor.py"
    source.write_text("from . import sources\nfrom .sources import Local\nfrom .. import smoke_test\n")
    names = set(fingerprint._imported_modules(source, "components.baseline.executor", is_package=False))
    assert names == {
        "components.baseline",
        "components.baseline.sources",
        "components.baseline.sources.Local",
        "components",
        "components.smoke_test",
    }


@pytest.fixture(scope="module")
def local_pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, dict]:
    """The compiled local IR's node parameters, with every fast path on and off."""
    nodes = {}
    for fast in (True, False):
        output = tmp_path_factory.mktemp(f"fast-{fast}")
        config = local_config(output, fast)
        ir = compiler.Compiler().compile(tfx_pipeline.create_pipeline(config))
        nodes[fast] = {
            node.pipeline_node.node_info.id: {
                key: value.field_value.string_value for key, value in node.pipeline_node.parameters.parameters.items()
            }
            for node in ir.nodes
        }
    return nodes


def local_config(output: Path, fast: bool) -> PipelineConfig:
    return load_config(overrides={"runner.output_dir": str(output), "fast_paths": fast})


def test_every_step_with_code_here_carries_its_fingerprint_into_tfxs_cache_key(local_pipelines, tmp_path) -> None:
    parameters = local_pipelines[True]
    own = {"CsvExampleGen", "SchemaGen", "ValidationGate", "BaselineModel", "Evaluator", "ModelRegistration"}
    if schema_sets_drift_thresholds(local_config(tmp_path, fast=True)):
        own |= {"BaselineStatistics", "DistributionValidator"}  # components/baseline, components/drift.py
    carried = {node for node, values in parameters.items() if fingerprint.SOURCE_FINGERPRINT_KEY in values}
    assert own <= carried
    assert not carried & {"StatisticsGen", "ExampleValidator", "Pusher"}  # TFX's code only
    for node in ("Transform", "Trainer"):
        assert json.loads(parameters[node]["custom_config"])[fingerprint.SOURCE_FINGERPRINT_KEY]


def test_a_fast_path_switched_off_changes_the_steps_fingerprint(local_pipelines) -> None:
    on, off = local_pipelines[True], local_pipelines[False]
    for node in ("CsvExampleGen", "Evaluator"):
        assert on[node][fingerprint.SOURCE_FINGERPRINT_KEY] != off[node][fingerprint.SOURCE_FINGERPRINT_KEY], node
    for node in ("ValidationGate", "BaselineModel", "ModelRegistration"):
        assert on[node][fingerprint.SOURCE_FINGERPRINT_KEY] == off[node][fingerprint.SOURCE_FINGERPRINT_KEY], node
