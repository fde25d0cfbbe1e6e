"""One real local run on ~1,500 rows of the configured data (tests/conftest.py), shared by the tests of
bad input, drift, interrupts and the report."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import BASE_CONFIG, PipelineConfig, load_config
from runners import cli, errors

# A bar the model of a few steps clears, for a metric where higher is better (AUC, accuracy). For an
# error (mae, mse, rmse) the configured bar stays.
LENIENT_MINIMUM = 0.6


def lenient_run_config(train_steps: int, eval_steps: int, minimum: float = LENIENT_MINIMUM, **evaluation: Any) -> str:
    """A config for test runs: few steps, a lenient blessing bar and `evaluation` settings; the rest as
    configured (configs/base.yaml)."""
    settings: dict[str, Any] = {
        "runner": {"kind": "local", "output_dir": "unused-overridden-by-flag"},
        "training": {"train_steps": train_steps, "eval_steps": eval_steps},
    }
    if load_config().evaluation.blessing.higher_is_better:
        evaluation["blessing"] = {"minimum": minimum}
    if evaluation:
        settings["evaluation"] = evaluation
    return yaml.safe_dump(settings, sort_keys=False)


# Few steps: the tests need a blessed, pushed model and real numbers, not a good model.
GOOD_RUN_CONFIG = lenient_run_config(train_steps=60, eval_steps=5)


@dataclass(frozen=True)
class LocalRun:
    config: Path
    data: Path
    output: Path
    status: int
    stdout: str
    stderr: str
    summary: dict

    def pipeline_config(self, output: Path | None = None) -> PipelineConfig:
        """The run's configuration, its output folder `output` (default: the run's own)."""
        return load_config([BASE_CONFIG, self.config], {"runner.output_dir": str(output or self.output)})

    @property
    def pipeline_name(self) -> str:
        return self.pipeline_config().pipeline_name

    def args(self, **overrides: str) -> list[str]:
        """run-local arguments of this run; `data=`, `output=`, `config=` override them."""
        return [
            "run-local",
            "--config", overrides.get("config", str(self.config)),
            "--data", overrides.get("data", str(self.data)),
            "--output-dir", overrides.get("output", str(self.output)),
        ]  # fmt: skip


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """cli.main in this process; returns (status, stdout, stderr). Progress lines go to the real stdout."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(args)
    return status, out.getvalue(), err.getvalue()


def tree_hash(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, and every folder's path: equal iff identical trees."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def good_run(tmp_path_factory: pytest.TempPathFactory, small_data_dir: Path) -> LocalRun:
    work = tmp_path_factory.mktemp("good-run")
    config = work / "test.yaml"
    config.write_text(GOOD_RUN_CONFIG)
    output = work / "out"
    summary = work / "summary.json"
    status, stdout, stderr = run_cli(
        ["run-local", "--config", str(config), "--data", str(small_data_dir), "--output-dir", str(output),
         "--summary-json", str(summary)]
    )  # fmt: skip
    assert status == errors.EXIT_OK, stderr
    return LocalRun(config, small_data_dir, output, status, stdout, stderr, json.loads(summary.read_text()))
