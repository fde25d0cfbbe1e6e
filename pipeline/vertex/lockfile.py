"""requirements.lock inside the image build: constraints without hashes, and a version check.

Runs with the image's Python and the standard library only (it is copied alone into the build).

  python lockfile.py constraints requirements.lock > constraints.txt
  python lockfile.py check requirements.lock [PACKAGE ...]

pip refuses an unhashed requirement (`pip install pydantic`) next to a constraints file with
hashes, so `constraints` writes the lock's pins without them. `check` fails when an installed
package of the TFX family differs from the lock (the image must run what was tested locally).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

TFX_FAMILY = (
    "tfx",
    "tensorflow",
    "tf-keras",
    "apache-beam",
    "tensorflow-transform",
    "tensorflow-model-analysis",
    "tensorflow-data-validation",
    "tfx-bsl",
    "ml-metadata",
)

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(;[^\\]*)?")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock_text: str) -> dict[str, tuple[str, str]]:
    """{normalized name: (version, environment marker or '')} for every `name==version` line."""
    result: dict[str, tuple[str, str]] = {}
    for line in lock_text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            result[normalize(match[1])] = (match[3], (match[4] or "").strip())
    return result


def constraints(lock_text: str) -> str:
    lines = [f"{name}=={version} {marker}".rstrip() for name, (version, marker) in sorted(pins(lock_text).items())]
    return "\n".join(lines) + "\n"


def mismatches(lock_text: str, packages: Iterable[str]) -> list[str]:
    """One message per package whose installed version is not the locked one."""
    locked = pins(lock_text)
    problems = []
    for package in packages:
        wanted = locked.get(normalize(package))
        if wanted is None:
            problems.append(f"{package} is not in the lock")
            continue
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            problems.append(f"{package} is not installed (lock: {wanted[0]})")
            continue
        if installed != wanted[0]:
            problems.append(f"{package} {installed} is installed, the lock has {wanted[0]}")
    return problems


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("constraints", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    lock_text = Path(argv[1]).read_text()
    if argv[0] == "constraints":
        sys.stdout.write(constraints(lock_text))
        return 0
    problems = mismatches(lock_text, argv[2:] or TFX_FAMILY)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
