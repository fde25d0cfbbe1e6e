"""actionlint (rhysd/actionlint) over every workflow: syntax, expressions and their types,
contexts, job needs, and shellcheck on the `run:` scripts when shellcheck is installed.

It comes from requirements-actionlint.lock via `make actionlint`, whose build downloads the
actionlint binary from github.com. CI (.github/workflows/ci.yaml) installs it before the tests;
on a machine that cannot reach GitHub it is absent and this test is skipped, saying so.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.workflows.workflows import REPO_ROOT, all_steps, workflow_files

ACTIONLINT = REPO_ROOT / ".venv-actionlint" / "bin" / "actionlint"


def actionlint_command() -> str | None:
    if ACTIONLINT.exists():
        return str(ACTIONLINT)
    return shutil.which("actionlint")


def test_actionlint_passes_on_all_workflows() -> None:
    command = actionlint_command()
    if command is None:
        pytest.skip("actionlint is not installed: `make actionlint` installs it (needs access to github.com)")
    result = subprocess.run(
        [command, "-no-color", *map(str, workflow_files())],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_scripts_pass_shellcheck() -> None:
    """What actionlint does for each `run:` script, for machines with shellcheck but without
    actionlint (GitHub's Ubuntu runners ship shellcheck; Debian has the package)."""
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    problems = []
    for name, job_id, step in all_steps():
        if "run" not in step:
            continue
        # The rules actionlint turns off for run: scripts (they misfire on generated scripts).
        result = subprocess.run(
            [shellcheck, "--norc", "--shell=bash", "--exclude=SC1091,SC2194,SC2050,SC2154,SC2157", "-"],
            input=step["run"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            problems.append(f"{name} {job_id} {step.get('name')}:\n{result.stdout}")
    assert problems == []
