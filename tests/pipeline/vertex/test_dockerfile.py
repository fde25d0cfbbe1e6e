"""Static checks of the pipeline image definition (no Docker daemon needed)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from pipeline.vertex.lockfile import TFX_FAMILY, pins
from pipeline.vertex.training import TRAINING_ENV

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COPIED_SOURCES = {
    "pipeline/",
    "components/",
    "models/",
    "configs/",
    "schema/",
    "requirements.lock",
    "pipeline/vertex/lockfile.py",
}


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def args_of(steps: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for key, rest in steps if key == keyword]


def test_base_image_is_the_locked_tfx_release_pinned(steps) -> None:
    (base_arg,) = [arg for arg in args_of(steps, "ARG") if arg.startswith("TFX_IMAGE=")]
    base = base_arg.split("=", 1)[1]
    assert args_of(steps, "FROM") == ["${TFX_IMAGE}"]
    assert steps[0] == ("ARG", base_arg)
    tfx_version = pins((REPO / "requirements.lock").read_text())["tfx"][0]
    digest = re.fullmatch(r"gcr\.io/tfx-oss-public/tfx@sha256:[0-9a-f]{64}", base)
    assert digest or base == f"gcr.io/tfx-oss-public/tfx:{tfx_version}"
    if not digest:  # pinned by tag: the file must say how to pin the digest
        assert "image_summary.digest" in DOCKERFILE.read_text()


def test_lock_is_used_as_constraints_and_the_tfx_family_is_checked(steps) -> None:
    (install,) = [run for run in args_of(steps, "RUN") if "pip install" in run]
    assert "lockfile.py constraints /tmp/build/requirements.lock > /tmp/build/constraints.txt" in install
    assert "--constraint /tmp/build/constraints.txt" in install
    assert not re.search(r"\s(-U|--upgrade|--force-reinstall|--no-deps|-r)\s", install)
    installed = install.split("pip install", 1)[1].split("&&")[0].split()
    packages = [word for word in installed if not word.startswith("-") and "/" not in word]
    assert packages == ["pydantic", "pyyaml"]
    assert not set(packages) & set(TFX_FAMILY)
    assert install.index("pip install") < install.index("lockfile.py check")


def test_only_code_configs_and_the_lock_are_copied(steps) -> None:
    copied = {source for args in args_of(steps, "COPY") for source in args.split()[:-1]}
    assert copied == COPIED_SOURCES
    assert args_of(steps, "ADD") == []
    for source in copied:
        assert (REPO / source).exists(), source


def test_entrypoint_of_the_base_image_is_kept(steps) -> None:
    assert args_of(steps, "ENTRYPOINT") == []
    assert args_of(steps, "CMD") == []


def test_keras_choice_and_code_path_are_set(steps) -> None:
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args_of(steps, "ENV"))))
    assert env["TF_USE_LEGACY_KERAS"] == TRAINING_ENV["TF_USE_LEGACY_KERAS"] == "1"
    assert env["PYTHONPATH"] == args_of(steps, "WORKDIR")[-1] == "/pipeline"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^export TF_USE_LEGACY_KERAS := 1$", makefile, re.MULTILINE)


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore-style `patterns` exclude `path` or one of its parent folders."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix.rsplit("/", 1)[-1], bare):
                return True
    return False


def test_dockerignore_keeps_credentials_and_local_state_out() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"]
    for required in (".venv", ".local", "build", ".git", "gha-creds-*.json", "tests"):
        assert required in patterns
    for path in (
        "gha-creds-1a2b3c.json",
        "pipeline/gha-creds-1a2b3c.json",
        ".venv/bin/python",
        ".local/metadata/m.sqlite",
        "build/dev/pipeline.json",
        ".git/config",
        "tools/standins/vertex_server.py",
        "pipeline/__pycache__/cli.cpython-310.pyc",
    ):
        assert ignored(path, patterns), path
    for path in ("pipeline/cli.py", "models/model.py", "configs/vertex-prod.yaml", "requirements.lock"):
        assert not ignored(path, patterns), path
