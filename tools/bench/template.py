"""A runnable copy of the TFX taxi template from the installed tfx package: the benchmark's baseline.

Nothing of the template is kept in this repository: `copy_template` copies it out of the installed
package at bench time and makes the changes a user of `tfx template copy` would make to run it
whole, on our data:

- imports `from tfx.experimental.templates.taxi.x` become `from x` and `{{PIPELINE_NAME}}` gets a
  name, exactly as `tfx template copy` does;
- every `# components.append(...)` left commented under the `TODO(step N)` markers is enabled,
  and the ExampleValidator block, which the template nests under the ImportSchemaGen branch
  (so it never runs with an inferred schema), is moved out of that branch;
- AUC is added to the Evaluator's metrics, next to BinaryAccuracy and without a threshold, so
  both pipelines report it (the blessing still depends on accuracy alone, as shipped);
- local_runner.py reads the given data folder and writes under the given output folder;
- its modules are compiled to bytecode in place (see tools.bench.bytecode), as an installed
  package's would be, so a timed run does not compile them.

The template runs in either of TensorFlow 2.16's Keras modes (`KERAS_MODES`): by default `tf.keras`
is Keras 3; with TF_USE_LEGACY_KERAS=1 it is tf_keras (Keras 2), the only mode ours runs in
(TFT and TFMA need Keras 2). The template's own code runs in both.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from tools.bench.bytecode import compile_sources

TEMPLATE = Path("experimental", "templates", "taxi")
PIPELINE_NAME = "taxi-template"
# What `tfx template copy` replaces (tfx/tools/cli/handler/template_handler.py).
_IMPORT_FROM_PACKAGE = re.compile(r"from tfx\.experimental\.templates\.[^\.]+\.")
_PLACEHOLDER = "{{PIPELINE_NAME}}"
_COMMENTED_APPEND = "# components.append("
_VALIDATOR_START = "# Performs anomaly detection"
_VALIDATOR_END = "components.append(example_validator)"
_METRICS_LIST = "tfma.MetricsSpec(metrics=["
_RUNNER_SCRIPT = Path(__file__).with_name("template_run.py")

DEFAULT_KERAS, LEGACY_KERAS = "default", "legacy"
# Mode -> whether it sets TF_USE_LEGACY_KERAS=1.
KERAS_MODES = {DEFAULT_KERAS: False, LEGACY_KERAS: True}
KERAS_MODE_TITLES = {
    DEFAULT_KERAS: "Keras 3, TensorFlow's default",
    LEGACY_KERAS: "tf_keras, TF_USE_LEGACY_KERAS=1",
}


class TemplateError(Exception):
    """The installed template does not look as expected; the message says what is missing."""


def template_source() -> Path:
    """The taxi template inside the installed tfx package, found without importing tfx."""
    spec = importlib.util.find_spec("tfx")
    if spec is None or not spec.submodule_search_locations:
        raise TemplateError("the tfx package is not installed; run `make setup`")
    source = Path(next(iter(spec.submodule_search_locations))) / TEMPLATE
    if not (source / "pipeline" / "pipeline.py").is_file():
        raise TemplateError(f"no taxi template in the installed tfx package (looked in {source})")
    return source


def copy_template(dest: Path, data_dir: Path, output_dir: Path) -> Path:
    """Copies the template to `dest` (which must not exist), ready to run; returns `dest`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.ipynb", "e2e_tests", "*_test.py", ".gitignore")
    shutil.copytree(template_source(), dest, ignore=ignore)
    for source in dest.rglob("*.py"):
        text = _IMPORT_FROM_PACKAGE.sub("from ", source.read_text())
        source.write_text(text.replace(_PLACEHOLDER, PIPELINE_NAME))
    pipeline_py = dest / "pipeline" / "pipeline.py"
    pipeline_py.write_text(add_auc_metric(enable_all_components(pipeline_py.read_text())))
    runner_py = dest / "local_runner.py"
    runner_py.write_text(point_runner_at(runner_py.read_text(), data_dir.resolve(), output_dir.resolve()))
    compile_sources([dest])
    return dest


def enable_all_components(text: str) -> str:
    """Uncomments every `components.append` and takes ExampleValidator out of the else branch."""
    if text.count(_COMMENTED_APPEND) < 8:
        raise TemplateError(f"expected the template's commented `{_COMMENTED_APPEND}` lines, found too few")
    lines = text.replace(_COMMENTED_APPEND, _COMMENTED_APPEND[2:]).splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _VALIDATOR_START in line), None)
    end = next((i for i, line in enumerate(lines) if _VALIDATOR_END in line), None)
    if start is None or end is None or end < start:
        raise TemplateError("the template's ExampleValidator block was not found")
    for i in range(start, end + 1):
        if lines[i].startswith("    "):
            lines[i] = lines[i][2:]
    return "".join(lines)


def add_auc_metric(text: str) -> str:
    if text.count(_METRICS_LIST) != 1:
        raise TemplateError(f"expected one `{_METRICS_LIST}` in the template's pipeline.py")
    return text.replace(_METRICS_LIST, _METRICS_LIST + "tfma.MetricConfig(class_name='AUC'),")


def point_runner_at(text: str, data_dir: Path, output_dir: Path) -> str:
    for name, value in (("OUTPUT_DIR", output_dir), ("DATA_PATH", data_dir)):
        text, count = re.subn(rf"^{name} = .*$", f"{name} = {str(value)!r}", text, flags=re.MULTILINE)
        if count != 1:
            raise TemplateError(f"expected one `{name} = ...` line in the template's local_runner.py")
    return text


def keras_env(mode: str, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with TF_USE_LEGACY_KERAS as `mode` needs it: "1" for legacy, absent for default."""
    if mode not in KERAS_MODES:
        raise ValueError(f"unknown Keras mode {mode!r} (known: {', '.join(KERAS_MODES)})")
    env = {key: value for key, value in base.items() if key != "TF_USE_LEGACY_KERAS"}
    if KERAS_MODES[mode]:
        env["TF_USE_LEGACY_KERAS"] = "1"
    return env


def run_command(copy_dir: Path, summary_json: Path) -> list[str]:
    """The command that runs a copy and writes its run summary (see bench_template_run)."""
    return [sys.executable, str(_RUNNER_SCRIPT), str(copy_dir), str(summary_json)]
