"""README "Make it yours", step by step: the template adapted to other data by editing only models/,
schema/ and configs/, and the example's own tests (tests/example/).

For each dataset of tests/adaptations.py (three classes; two classes, with other columns again), a
copy of the repository's files (tracked, and new ones git does not ignore) gets the README's steps in
order: configs/base.yaml (name, data, evaluation), models/label.py and models/features.py, the schema
`python -m pipeline schema` proposes from the data, curated, configs/smoke_instances.json, the
pipeline's name in configs/vertex-*.yaml, and tests/example/ rewritten for the new data (its own
tests in place of the taxi example's, golden specs from `make golden`). The copy then runs end to
end (`run-local --require-blessing`), compiles its Vertex AI spec and passes FORK_PROOF_TESTS as
they are, with this repository's interpreter. The machinery (pipeline/, components/, runners/,
tools/) and its tests are used as they are: a change they would need fails here.

With MAKE_IT_YOURS_SUITE=full (`make fork-check`), each copy runs its own `make test` instead, this
file included (in a copy it skips the dataset the copy already is): about 15 minutes per copy on 2
cores, so not on every push (.github/workflows/fork-check.yaml, weekly).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from components.serving_checks import MULTICLASS, PROBABILITIES, prediction_problems
from pipeline.config import load_config
from pipeline.paths import REPO_ROOT
from tests.adaptations import CHURN, PLANS, Adaptation, Columns, curated_schema, example_test, features_module

pytestmark = pytest.mark.e2e

ROWS = 3000
SEED = 20261130
# What the adaptation may change; the rest of the template is used as it is.
YOURS = ("models/", "schema/", "configs/", "tests/example/")
# As CI compiles (.github/workflows/ci.yaml): a well-formed digest that names no real image.
PLACEHOLDER_IMAGE = "us-docker.pkg.dev/example/pipelines/placeholder@sha256:" + "0" * 64
TEMPLATE_NAME = load_config().pipeline_name
STEP_TIMEOUT_S = 600
# The repository's tests each copy runs on every push: the fast ones among those that derive what
# they expect from configs/, models/ and schema/, and the copy's own example tests.
FORK_PROOF_TESTS = ("tests/pipeline", "tests/runners/test_cli.py", "tests/models", "tests/example")
FULL_SUITE = os.environ.get("MAKE_IT_YOURS_SUITE") == "full"
SUITE_TIMEOUT_S = 3600
# The one example test a fork keeps: it holds for any configs once `make golden` has rewritten golden/.
KEPT_EXAMPLE_TEST = "test_golden.py"


@dataclass(frozen=True)
class Adapted:
    adaptation: Adaptation
    repo: Path
    work: Path
    written: tuple[str, ...]  # what the steps wrote, relative to the repository


def copy_template(target: Path) -> None:
    """Copies the repository's files to `target`, tracked ones and new ones git does not ignore (as
    they will be committed), and commits them there: a fork is a git checkout of the template."""
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    )  # fmt: skip
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO_ROOT / name
        if not source.is_file():
            continue  # deleted in the working tree
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(source.read_bytes())
        destination.chmod(source.stat().st_mode)
    for git in (["init", "-q"], ["add", "-A"], ["-c", "user.name=fork", "-c", "user.email=fork@example.com",
                                               "commit", "-q", "-m", "The template"]):  # fmt: skip
        subprocess.run(["git", "-C", str(target), *git], check=True, capture_output=True)


def write_csv(folder: Path, columns: Columns) -> Path:
    folder.mkdir(parents=True)
    with (folder / "data.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values(), strict=True))
    return folder


def run_in_copy(repo: Path, command: list[str], timeout: float = STEP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """`command` in the copy, with this repository's interpreter: the copy's code only."""
    env = {**os.environ, "PYTHONPATH": "", "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    for variable in ("MAKE_IT_YOURS_SUITE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # as a fork's own shell
        env.pop(variable, None)
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def run_pipeline_command(repo: Path, *args: str) -> None:
    process = run_in_copy(repo, [sys.executable, "-m", "pipeline", *args])
    assert process.returncode == 0, f"python -m pipeline {' '.join(args)}: exit {process.returncode}\n{process.stderr}"


@pytest.fixture(scope="module", params=[PLANS, CHURN], ids=lambda adaptation: adaptation.pipeline_name)
def adapted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Adapted:
    adaptation: Adaptation = request.param
    if adaptation.pipeline_name == TEMPLATE_NAME:  # this file, run again in a copy adapted to this dataset
        pytest.skip(f"the template is {TEMPLATE_NAME} already")
    return adapt(adaptation, tmp_path_factory.mktemp(adaptation.pipeline_name))


def adapt(adaptation: Adaptation, work: Path) -> Adapted:
    """A copy of the template in `work`/repo after the README's steps 1 to 6, and 8, for one dataset."""
    repo = work / "repo"
    copy_template(repo)
    data = write_csv(work / "data", adaptation.generate(np.random.default_rng(SEED), ROWS))

    # 1. configs/base.yaml: the pipeline's name, the data, how the model is judged.
    base = yaml.safe_load((repo / "configs/base.yaml").read_text())
    base["pipeline_name"] = adaptation.pipeline_name
    base["data"]["path"] = str(data)
    base["evaluation"] = dict(adaptation.evaluation)
    (repo / "configs/base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    # 2. models/label.py: the task, the label's columns, how the label is computed.
    (repo / "models/label.py").write_text(adaptation.label_py)
    # 3. models/features.py: each feature in the list of its encoding.
    (repo / "models/features.py").write_text(features_module(adaptation))
    # 4. The schema: proposed from the data, then curated.
    run_pipeline_command(repo, "schema")
    proposal = (repo / "schema/schema.proposed.pbtxt").read_text()
    (repo / "schema/schema.pbtxt").write_text(curated_schema(proposal, adaptation))
    # 5. The serving instances: the model's features, typed as in the schema.
    (repo / "configs/smoke_instances.json").write_text(adaptation.smoke_instances_json)
    # 6. The Vertex AI environments: the pipeline's name in paths, labels, the registry model and the endpoint.
    vertex_files = sorted(path.relative_to(repo).as_posix() for path in (repo / "configs").glob("vertex-*.yaml"))
    for name in vertex_files:
        path = repo / name
        path.write_text(path.read_text().replace(TEMPLATE_NAME, adaptation.pipeline_name))

    # 8. The example's own tests: the dataset's in place of the taxi example's, and the golden specs
    #    compiled from the new configs (`make golden`).
    for path in (repo / "tests/example").glob("test_*.py"):
        if path.name != KEPT_EXAMPLE_TEST:
            path.unlink()
    example = f"tests/example/test_{adaptation.pipeline_name.replace('-', '_')}.py"
    (repo / example).write_text(example_test(adaptation))
    process = run_in_copy(repo, [sys.executable, "-m", "tools.refresh_golden"])
    assert process.returncode == 0, f"python -m tools.refresh_golden: exit {process.returncode}\n{process.stderr}"
    goldens = sorted(path.relative_to(repo).as_posix() for path in (repo / "tests/example/golden").glob("*.json"))

    written = ("configs/base.yaml", "models/label.py", "models/features.py", "schema/schema.pbtxt",
               "configs/smoke_instances.json", *vertex_files, example, *goldens)  # fmt: skip
    return Adapted(adaptation, repo, work, written)


@pytest.fixture(scope="module")
def local_run(adapted: Adapted) -> dict[str, Any]:
    """Step 7: the whole pipeline on this machine; its run summary, and where it wrote."""
    output, summary = adapted.work / "out", adapted.work / "summary.json"
    run_pipeline_command(
        adapted.repo, "run-local", "--require-blessing", "--output-dir", str(output), "--summary-json", str(summary)
    )
    return {"output": output, **json.loads(summary.read_text())}


@pytest.fixture(scope="module")
def vertex_spec(adapted: Adapted) -> str:
    """Step 7, then: the Vertex AI spec, compiled offline into build/dev/pipeline.json as `make compile` does."""
    run_pipeline_command(adapted.repo, "compile", "--env", "dev", "--image", PLACEHOLDER_IMAGE)
    return (adapted.repo / "build/dev/pipeline.json").read_text()


def test_the_template_tests_pass_in_the_copy(adapted: Adapted) -> None:
    """The machinery's tests derive what they expect from configs/, models/ and schema/: in the
    adapted copy they pass as they are, beside the copy's own example tests. With
    MAKE_IT_YOURS_SUITE=full, the copy's `make test` itself (its own tests/test_make_it_yours.py
    included), with this repository's .venv as the copy's (the same lock: `make setup` finds nothing
    to change)."""
    started = time.monotonic()
    if FULL_SUITE:
        (adapted.repo / ".venv").symlink_to(Path(sys.prefix))  # this repository's: the same lock
        command = ["make", "--no-print-directory", "test"]
    else:
        # The copy's own pytest settings (pyproject.toml); temporary files outside the copy, no cache in it.
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   f"--basetemp={adapted.work / 'pytest-tmp'}", "-m", "not e2e", *FORK_PROOF_TESTS]  # fmt: skip
    process = run_in_copy(adapted.repo, command, timeout=SUITE_TIMEOUT_S)
    report = process.stdout.strip().splitlines()
    totals = [line for line in report if re.search(r"\d+ (passed|failed)", line)]
    failures = [line for line in report if line.startswith(("FAILED ", "ERROR "))]
    assert process.returncode == 0, "\n".join([*report[-60:], *failures, *totals]) + process.stderr[-2000:]
    print(
        f"{adapted.adaptation.pipeline_name}: {' '.join(command[-5:])} in {time.monotonic() - started:.0f} s: {totals}"
    )


def test_the_model_is_blessed_and_pushed(adapted: Adapted, local_run: dict[str, Any]) -> None:
    assert local_run["blessed"] is True, local_run["blessing_failures"]
    pushed = Path(local_run["pushed_model"])
    assert pushed.parent == local_run["output"] / "serving_model" / adapted.adaptation.pipeline_name
    assert (pushed / "saved_model.pb").is_file()
    assert sum(local_run["rows_per_split"].values()) == ROWS


def test_the_metrics_are_the_tasks(adapted: Adapted, local_run: dict[str, Any]) -> None:
    metrics, task = local_run["metrics"], adapted.adaptation.task
    minimum = adapted.adaptation.evaluation["blessing"]["minimum"]
    if task.kind == MULTICLASS:
        per_class = {f"auc[{name}]" for name in task.classes}
        assert per_class | {"auc (macro average)", "accuracy"} <= set(metrics)
        assert all(0.5 < metrics[key] <= 1.0 for key in per_class), metrics
        assert metrics["auc (macro average)"] >= minimum
    else:
        assert {"auc", "auc_precision_recall", "accuracy"} <= set(metrics)
        assert not [key for key in metrics if "[" in key or "macro" in key], metrics
        assert metrics["auc"] >= minimum


def test_the_pushed_model_answers_the_raw_smoke_instances(adapted: Adapted, local_run: dict[str, Any]) -> None:
    """serving_default, which a Vertex AI endpoint calls, takes configs/smoke_instances.json as it is."""
    import tensorflow as tf

    instances, task = adapted.adaptation.smoke_instances, adapted.adaptation.task
    serve = tf.saved_model.load(local_run["pushed_model"]).signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    assert set(inputs) == set(instances[0])
    columns = {key: tf.constant([instance[key] for instance in instances], spec.dtype) for key, spec in inputs.items()}
    answer = serve(**columns)[PROBABILITIES].numpy()
    assert answer.shape == (len(instances), task.output_width)
    assert prediction_problems(answer.tolist(), len(instances), task) == []


def test_the_vertex_spec_is_the_new_pipeline_with_no_trace_of_the_template(adapted: Adapted, vertex_spec: str) -> None:
    spec, name = json.loads(vertex_spec), adapted.adaptation.pipeline_name
    assert spec["pipelineSpec"]["pipelineInfo"]["name"] == name
    assert spec["runtimeConfig"]["gcsOutputDirectory"] == f"gs://my-tfx-dev-pipelines/{name}"
    assert TEMPLATE_NAME not in vertex_spec


def test_only_models_schema_configs_and_the_example_tests_changed(
    adapted: Adapted, local_run: dict[str, Any], vertex_spec: str
) -> None:
    """After every step, the run and the compile included, the copy differs from the template only
    under models/, schema/, configs/ and tests/example/ (leaving out what git ignores: build/, the
    proposal, caches)."""
    status = subprocess.run(
        ["git", "-C", str(adapted.repo), "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    changed = {entry[3:] for entry in status.split("\0") if entry}
    assert sorted(name for name in changed if not name.startswith(YOURS)) == []
    assert set(adapted.written) <= changed
