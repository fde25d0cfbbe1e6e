"""Skips a local run whose inputs have not changed since the last completed run.

A re-run with nothing changed would be served entirely from TFX's cache, but reaching that
answer costs about 15 s: importing TFX and TensorFlow, compiling the pipeline and asking ML
Metadata about every step. Everything that can change a step's output is known before any of
that: the validated config, the data files, the project's code, the locked packages and the
schema. When their fingerprint equals the one recorded by the last completed run, and that
run's outputs are still in place, its summary is the answer.

The data files count by their content, not their sizes and modification times: a value edited in
place, with the file's time put back (as copies and syncs that preserve times do), is new data
that the validation gate must see. CsvExampleGen's own input fingerprint, which decides whether
TFX's cache may reuse its examples, is content-based for the same reason (components/csv_examples.py).
The code counts by the rule of the steps' own fingerprints: every file of `pipeline/`,
`components/` and `models/` as Python imports them (pipeline/fingerprint.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline import fingerprint
from pipeline.config import PipelineConfig
from pipeline.data import content_fingerprint, csv_files
from pipeline.paths import REPO_ROOT

_PROJECT_ROOT = REPO_ROOT
# Every file of these packages, by the rule of the steps' source fingerprints (pipeline/fingerprint.py),
# which covers what any step can import from this repository.
_CODE_PACKAGES = fingerprint.REPOSITORY_PACKAGES
_RECORD_NAME = "last_completed_run.json"


def inputs_fingerprint(config: PipelineConfig, data_dir: str) -> str:
    digest = hashlib.sha256(config.model_dump_json().encode())
    digest.update(content_fingerprint(csv_files(Path(data_dir))).encode())
    for package in _CODE_PACKAGES:
        for name, source in fingerprint.package_files(package):
            digest.update(f"{name}\0{source.stat().st_size}\0".encode())
            digest.update(source.read_bytes())
    for extra in (_PROJECT_ROOT / "requirements.lock", config.schema_path):
        if extra and Path(extra).is_file():
            digest.update(Path(extra).read_bytes())
    return digest.hexdigest()


def record_path(config: PipelineConfig) -> Path:
    return Path(config.runner.output_dir).resolve() / "metadata" / config.pipeline_name / _RECORD_NAME


def unchanged_run(config: PipelineConfig, fingerprint: str) -> dict | None:
    """The record ({"summary", "report"}) of the last completed run, if nothing changed since."""
    path = record_path(config)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("fingerprint") != fingerprint:
        return None
    pushed = record.get("summary", {}).get("pushed_model")
    if pushed and not Path(pushed).is_dir():
        return None
    if not (path.parent / "metadata.sqlite").is_file():
        return None
    return record


def record_completed_run(config: PipelineConfig, fingerprint: str, summary_json: str, report: str | None) -> None:
    path = record_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"fingerprint": fingerprint, "summary": json.loads(summary_json), "report": report}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2))
    temporary.replace(path)


def forget_completed_run(config: PipelineConfig) -> None:
    record_path(config).unlink(missing_ok=True)
