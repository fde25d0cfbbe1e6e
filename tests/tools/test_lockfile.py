"""The image's runtime locks against requirements.lock, and the build's installed-set check."""

from __future__ import annotations

import re
import site
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from pipeline.paths import REPO_ROOT
from tools import lockfile

REPO = REPO_ROOT
LOCK = REPO / "requirements.lock"
RUNTIME_LOCK = REPO / "requirements-runtime.lock"
GPU_LOCK = REPO / "requirements-runtime-gpu.lock"
SCRIPT = REPO / "tools" / "lockfile.py"
DEV_TOOLS = ("pytest", "ruff", "gcp-storage-emulator", "python-hcl2")


def hashed_pins(lock_text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """{name: (version, hashes)} of a `uv pip compile --generate-hashes` lock."""
    entries = {}
    for block in re.split(r"\n(?=\S)", lock_text):
        head = lockfile.pins(block.splitlines()[0])
        if head:
            ((name, (version, _)),) = head.items()
            entries[name] = (version, frozenset(re.findall(r"--hash=(sha256:[0-9a-f]{64})", block)))
    return entries


@pytest.fixture(scope="module")
def full() -> dict[str, tuple[str, frozenset[str]]]:
    return hashed_pins(LOCK.read_text())


@pytest.fixture(scope="module")
def runtime() -> dict[str, tuple[str, frozenset[str]]]:
    return hashed_pins(RUNTIME_LOCK.read_text())


@pytest.fixture(scope="module")
def gpu() -> dict[str, tuple[str, frozenset[str]]]:
    return hashed_pins(GPU_LOCK.read_text())


def roots(requirements_in: Path) -> list[Requirement]:
    """The requirements of a .in file, following `-r other.in`."""
    result = []
    for line in requirements_in.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            result += roots(requirements_in.parent / line.removeprefix("-r ").strip())
        elif line:
            result.append(Requirement(line))
    return result


def with_extras(requirement: Requirement) -> list[tuple[str, str]]:
    """(name, extra) pairs a requirement asks for: the package itself ('') and each extra."""
    return [(lockfile.normalize(requirement.name), extra) for extra in ("", *requirement.extras)]


def applies(requirement: Requirement, extra: str) -> bool:
    return requirement.marker is None or requirement.marker.evaluate({**default_environment(), "extra": extra})


def closure(requirements: list[Requirement]) -> set[str]:
    """Names of `requirements` and everything they require, from the metadata installed in .venv."""
    seen: set[tuple[str, str]] = set()
    pending = [pair for requirement in requirements for pair in with_extras(requirement)]
    while pending:
        name, extra = pending.pop()
        if (name, extra) not in seen:
            seen.add((name, extra))
            needed = [Requirement(text) for text in metadata.requires(name) or ()]
            pending += [
                pair for requirement in needed if applies(requirement, extra) for pair in with_extras(requirement)
            ]
    return {name for name, _ in seen}


def test_every_lock_is_hashed_and_the_runtime_locks_pin_exactly_as_the_full_lock(full, runtime, gpu) -> None:
    for lock in (full, runtime, gpu):
        assert lock and all(hashes for _, hashes in lock.values())
    assert set(runtime) < set(full)
    for name, pin in runtime.items():
        assert pin == full[name], name
    for name in set(gpu) & set(full):
        assert gpu[name] == full[name], name


def test_the_runtime_lock_is_exactly_the_closure_of_the_runtime_requirements(runtime) -> None:
    expected = closure(roots(REPO / "requirements-runtime.in"))
    assert set(runtime) == expected  # closed (nothing missing) and minimal (nothing else)
    assert not set(runtime) & set(DEV_TOOLS)
    assert set(closure(roots(REPO / "requirements.in"))) - set(runtime) >= set(DEV_TOOLS)


def test_the_gpu_lock_adds_exactly_tensorflows_cuda_libraries(runtime, gpu) -> None:
    assert {name: pin for name, pin in gpu.items() if name in runtime} == runtime
    and_cuda = {
        lockfile.normalize(requirement.name): str(requirement.specifier).removeprefix("==")
        for requirement in map(Requirement, metadata.requires("tensorflow"))
        if applies(requirement, "and-cuda") and not applies(requirement, "")
    }
    assert {name: version for name, (version, _) in gpu.items() if name not in runtime} == and_cuda
    assert and_cuda and all(name.startswith("nvidia-") for name in and_cuda)


def test_the_lock_files_follow_from_the_in_files() -> None:
    assert "-r requirements-runtime.in" in (REPO / "requirements.in").read_text().splitlines()
    assert "-r requirements-runtime.in" in (REPO / "requirements-runtime-gpu.in").read_text().splitlines()
    dry_run = subprocess.run(["make", "-n", "lock"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    compiles = [line.split() for line in dry_run.splitlines() if " pip compile " in line]
    assert [(words[words.index("-o") + 1], [word for word in words if word.endswith(".in")]) for words in compiles] == [
        ("requirements.lock", ["requirements.in"]),
        ("requirements-runtime.lock", ["requirements-runtime.in"]),
        ("requirements-runtime-gpu.lock", ["requirements-runtime-gpu.in"]),
    ]
    options = {"--generate-hashes", "--exclude-newer", "2025-01-01", "--python-version", "3.10"}
    assert all(options <= set(words) for words in compiles)
    assert "--constraint" not in compiles[0]
    assert [words[words.index("--constraint") + 1] for words in compiles[1:]] == ["requirements.lock"] * 2


def test_the_locks_carry_no_environment_markers() -> None:
    for lock in (LOCK, RUNTIME_LOCK, GPU_LOCK):
        assert lockfile.locked_versions(lock.read_text())
    with pytest.raises(ValueError, match="environment markers.*: baz"):
        lockfile.locked_versions('foo==1.0\nbaz==2.0 ; python_version >= "3.10"\n')


def test_exactly_the_lock_plus_pip_passes() -> None:
    locked = {"tfx": "1.16.0", "numpy": "1.26.4"}
    assert lockfile.differences(locked, {"tfx": ["1.16.0"], "numpy": ["1.26.4"], "pip": ["23.0.1"]}) == []


def test_an_extra_package_is_reported() -> None:
    installed = {"tfx": ["1.16.0"], "pip": ["24.2"], "pytest": ["8.3.4"]}
    assert lockfile.differences({"tfx": "1.16.0"}, installed) == ["pytest 8.3.4 is installed but not in the lock"]


def test_a_missing_package_is_reported() -> None:
    installed = {"tfx": ["1.16.0"], "pip": ["24.2"]}
    assert lockfile.differences({"tfx": "1.16.0", "numpy": "1.26.4"}, installed) == [
        "numpy is not installed (lock: 1.26.4)"
    ]


def test_another_version_is_reported() -> None:
    installed = {"apache-beam": ["2.58.0"], "pip": ["24.2"]}
    assert lockfile.differences({"apache-beam": "2.59.0"}, installed) == [
        "apache-beam 2.58.0 is installed, the lock has 2.59.0"
    ]


def test_a_package_installed_twice_is_reported() -> None:
    installed = {"numpy": ["1.26.4", "1.24.0"], "pip": ["24.2"]}
    assert lockfile.differences({"numpy": "1.26.4"}, installed) == [
        "numpy is installed more than once (1.24.0, 1.26.4)"
    ]


def test_missing_pip_is_reported_because_beams_boot_needs_it() -> None:
    (problem,) = lockfile.differences({"tfx": "1.16.0"}, {"tfx": ["1.16.0"]})
    assert problem.startswith("pip is not installed, but the image needs it: Beam's boot runs `python -m pip show")


def test_tooling_the_lock_pins_must_match_the_lock() -> None:
    assert lockfile.differences({"pip": "24.2"}, {"pip": ["23.0.1"]}) == ["pip 23.0.1 is installed, the lock has 24.2"]


def write_distribution(site_dir: Path, folder: str, name: str, version: str) -> None:
    (site_dir / folder).mkdir(parents=True)
    (site_dir / folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_installed_distributions_are_read_from_their_metadata(tmp_path: Path) -> None:
    write_distribution(tmp_path, "PyYAML-6.0.2.dist-info", "PyYAML", "6.0.2")
    write_distribution(tmp_path, "tf_keras-2.16.0.dist-info", "tf_keras", "2.16.0")
    write_distribution(tmp_path, "tf_keras-2.15.0.dist-info", "tf-keras", "2.15.0")
    installed = lockfile.installed_distributions([str(tmp_path)])
    assert {name: sorted(versions) for name, versions in installed.items()} == {
        "pyyaml": ["6.0.2"],
        "tf-keras": ["2.15.0", "2.16.0"],
    }


def test_the_local_environment_is_requirements_lock_plus_the_installer() -> None:
    """`make setup` syncs .venv to requirements.lock and puts uv next to it; nothing else may be there."""
    installed = lockfile.installed_distributions(site.getsitepackages())
    problems = lockfile.differences(lockfile.locked_versions(LOCK.read_text()), installed)
    installer = re.compile(r"uv \S+ is installed but not in the lock")
    assert [problem for problem in problems if not installer.fullmatch(problem)] == []


def test_runs_as_a_standalone_script_on_the_interpreters_own_path(tmp_path: Path) -> None:
    site_dir = tmp_path / "site-packages"
    write_distribution(site_dir, "pip-24.2.dist-info", "pip", "24.2")
    write_distribution(site_dir, "tfx-1.16.0.dist-info", "tfx", "1.16.0")
    good, bad = tmp_path / "good.lock", tmp_path / "bad.lock"
    good.write_text("tfx==1.16.0 \\\n    --hash=sha256:00\n")
    bad.write_text("tfx==1.15.1 \\\n    --hash=sha256:00\nnumpy==1.26.4\n")

    def check(lock: Path) -> subprocess.CompletedProcess[str]:
        # -S: no site-packages, so the interpreter sees only the stand-in site folder (and the stdlib).
        command = [sys.executable, "-S", str(SCRIPT), "check", str(lock)]
        return subprocess.run(command, capture_output=True, text=True, env={"PYTHONPATH": str(site_dir)})

    ok = check(good)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "1 locked packages installed, nothing else but pip\n", "")
    failed = check(bad)
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        "error: numpy is not installed (lock: 1.26.4)",
        "error: tfx 1.16.0 is installed, the lock has 1.15.1",
    ]
