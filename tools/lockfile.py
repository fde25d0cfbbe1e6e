"""The image build's last word on its Python packages: the installed set must be the lock.

Runs with the image's Python and the standard library only (it is copied alone into the build):

  python lockfile.py check requirements-runtime.lock

`check` fails (exit 1, one line per difference) when the installed distributions differ from the
lock in any way: a locked package missing or at another version, a package installed twice, or an
installed package the lock does not hold. The only packages allowed next to the lock are the
installer tooling in TOOLING, each for the reason given there.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

# Installed in the image on purpose although the lock does not pin them. `uv pip sync` keeps the
# seed packages (pip, setuptools, wheel) of a Python it did not create instead of removing them, so
# whatever the base image has of these stays; the lock pins setuptools and wheel, so only pip is
# left over. Beam's boot program needs it: every worker start runs `python -m pip show apache-beam`
# (no pip: "Apache Beam is not installed in the runtime environment") and logs `pip freeze`, and
# the pipeline steps' Beam stager runs `pip freeze` for the job's submission environment.
TOOLING: Mapping[str, str] = {
    "pip": "Beam's boot runs `python -m pip show apache-beam` and `pip freeze` at every worker start",
}

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(;[^\\]*)?")


def normalize(name: str) -> str:
    """The PEP 503 form of a distribution name: `PyYAML` and `pyyaml`, `tf_keras` and `tf-keras` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock_text: str) -> dict[str, tuple[str, str]]:
    """{normalized name: (version, environment marker or '')} for every `name==version` line."""
    result: dict[str, tuple[str, str]] = {}
    for line in lock_text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            result[normalize(match[1])] = (match[3], (match[4] or "").strip())
    return result


def locked_versions(lock_text: str) -> dict[str, str]:
    """{normalized name: version}; refuses environment markers, which the standard library cannot evaluate.

    uv resolves the locks for one platform and one Python (`make lock`), so they carry none.
    """
    locked = pins(lock_text)
    with_markers = sorted(name for name, (_, marker) in locked.items() if marker)
    if with_markers:
        raise ValueError(f"environment markers in the lock, which the check cannot evaluate: {', '.join(with_markers)}")
    return {name: version for name, (version, _) in locked.items()}


def installed_distributions(paths: Sequence[str] | None = None) -> dict[str, list[str]]:
    """{normalized name: [version, ...]} of every distribution on `paths` (default sys.path).

    A name with two versions means two metadata directories for it, e.g. left behind by an
    uninstall that did not finish.
    """
    found: dict[str, list[str]] = {}
    for distribution in metadata.distributions(path=list(paths) if paths is not None else sys.path):
        name = distribution.metadata["Name"]
        found.setdefault(normalize(name) if name else "<no name>", []).append(distribution.version)
    return found


def differences(
    locked: Mapping[str, str], installed: Mapping[str, Iterable[str]], tooling: Mapping[str, str] = TOOLING
) -> list[str]:
    """One message per way `installed` ({name: versions}) is not exactly `locked` plus `tooling`."""
    problems = []
    for name in sorted(locked.keys() | installed.keys() | tooling.keys()):
        found = list(installed.get(name, ()))
        versions = sorted(set(found))
        if len(found) > 1:
            problems.append(f"{name} is installed more than once ({', '.join(versions)})")
        elif name in locked and not versions:
            problems.append(f"{name} is not installed (lock: {locked[name]})")
        elif name in locked and versions != [locked[name]]:
            problems.append(f"{name} {versions[0]} is installed, the lock has {locked[name]}")
        elif name not in locked and name in tooling and not versions:
            problems.append(f"{name} is not installed, but the image needs it: {tooling[name]}")
        elif name not in locked and name not in tooling:
            problems.append(f"{name} {', '.join(versions)} is installed but not in the lock")
    return problems


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "check":
        print(__doc__, file=sys.stderr)
        return 2
    locked = locked_versions(Path(argv[1]).read_text())
    problems = differences(locked, installed_distributions())
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{len(locked)} locked packages installed, nothing else but {', '.join(sorted(TOOLING))}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
