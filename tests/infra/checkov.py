"""Running checkov from .venv-infra (`make infra-tools`, pinned by requirements-infra.lock; it
cannot share requirements.lock, see requirements-infra.in)."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from pipeline.paths import REPO_ROOT

CHECKOV = REPO_ROOT / ".venv-infra" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?$", re.M)


def scan(*arguments: str) -> dict[str, Any]:
    """`make infra-tools` (a no-op when .venv-infra is up to date), then checkov's JSON report."""
    tools = subprocess.run(["make", "-s", "infra-tools"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert tools.returncode == 0, tools.stdout + tools.stderr
    result = subprocess.run(
        [str(CHECKOV), *arguments, "--output", "json", "--skip-download"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: failed checks, which the tests report
    return json.loads(result.stdout)


def failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for check in report["results"]["failed_checks"]
    ]


def suppressions(text: str) -> list[tuple[str, str]]:
    """(check ID, reason) of every `# checkov:skip=ID:reason` comment in the text."""
    return [(check_id, reason.strip()) for check_id, reason in SKIP_COMMENT.findall(text)]
