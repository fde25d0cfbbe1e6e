"""Runs a copy of the TFX taxi template (see bench_template) and writes a run summary as JSON.

`python tools/bench/template_run.py COPY_DIR SUMMARY_JSON`, run as a script in a child process:
the copy has its own `pipeline` package, so ours must not be importable there. The summary has the
fields the benchmark reads from `python -m pipeline run-local --summary-json`: per-component
timings (from the same log messages, with our ProgressReporter), eval metrics, rows per split and
the blessing; and which Keras `tf.keras` was (the Keras mode is chosen by the environment).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

_PROGRESS = Path(__file__).resolve().parents[2] / "runners" / "local" / "progress.py"


def main(argv: list[str]) -> int:
    copy_dir, summary_json = Path(argv[0]).resolve(), Path(argv[1])
    sys.path[0] = str(copy_dir)  # the copy's `pipeline` and `models`, instead of this folder
    progress = _load_progress()
    import local_runner  # the copy's
    from absl import logging as absl_logging

    reporter = progress.ProgressReporter(sys.stdout)
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logger = logging.getLogger("absl")
    absl_logger.addHandler(reporter)
    absl_logger.propagate = False
    local_runner.run()
    absl_logger.removeHandler(reporter)
    summary = _summary(Path(local_runner.PIPELINE_ROOT))
    summary["timings"] = [asdict(timing) for timing in reporter.timings]
    summary["keras"] = keras_in_use()
    summary_json.write_text(json.dumps(summary, indent=2, sort_keys=True))
    return 0


def keras_in_use() -> str:
    """The package behind `tf.keras` and its version: "keras 3.6.0" or "tf_keras 2.16.0"."""
    import tensorflow as tf

    package = tf.keras.Model.__module__.split(".")[0]
    return f"{package} {importlib.metadata.version(package)}"


def _load_progress() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_progress", _PROGRESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _summary(root: Path) -> dict[str, Any]:
    import tensorflow_model_analysis as tfma
    from tensorflow_data_validation import load_stats_binary

    rows = {}
    for split_dir in sorted(_latest(root / "StatisticsGen" / "statistics").glob("Split-*")):
        stats = load_stats_binary(str(split_dir / "FeatureStats.pb"))
        rows[split_dir.name.removeprefix("Split-")] = stats.datasets[0].num_examples
    metrics = {}
    for metrics_for_slice in tfma.load_metrics(str(_latest(root / "Evaluator" / "evaluation"))):
        if not metrics_for_slice.slice_key.single_slice_keys:
            metrics = {
                entry.key.name: entry.value.double_value.value
                for entry in metrics_for_slice.metric_keys_and_values
                if entry.key.model_name in ("", "candidate")
                and not entry.key.is_diff
                and entry.value.HasField("double_value")
            }
    blessed = (_latest(root / "Evaluator" / "blessing") / "BLESSED").exists()
    return {"rows_per_split": rows, "metrics": metrics, "blessed": blessed}


def _latest(artifact_dir: Path) -> Path:
    """The artifact folder of the latest execution (folders are named by execution id)."""
    return max(artifact_dir.iterdir(), key=lambda path: int(path.name))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
