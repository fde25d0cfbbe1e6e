"""Static checks of the pipeline image definition (no Docker daemon needed)."""

from __future__ import annotations

import fnmatch
import re

import pytest

from pipeline.paths import REPO_ROOT
from pipeline.training import TRAINING_ENV
from tools.lockfile import pins
from tools.standins.containers import read_dockerfile

REPO = REPO_ROOT
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
RUNTIME_LOCKS = ("requirements-runtime.lock", "requirements-runtime-gpu.lock")
CODE = ("pipeline/", "components/", "models/", "configs/", "schema/")
BUILD_FILES = (*RUNTIME_LOCKS, "tools/lockfile.py")


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


def build_args(steps: list[tuple[str, str]]) -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in args_of(steps, "ARG"))


def makefile_variable(name: str) -> str:
    (value,) = re.findall(rf"^{name}\s*:?=\s*(\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    return value


def install_step(steps: list[tuple[str, str]]) -> str:
    (install,) = [run for run in args_of(steps, "RUN") if "uv pip sync" in run]
    return install


def test_base_is_beams_sdk_image_for_the_locked_python_and_beam_pinned(steps) -> None:
    base = build_args(steps)["BEAM_IMAGE"]
    assert steps[0] == ("ARG", f"BEAM_IMAGE={base}")
    assert args_of(steps, "FROM") == ["${BEAM_IMAGE}"]  # one stage: what the check saw is what ships
    python = (REPO / ".python-version").read_text().strip()
    beam = pins((REPO / "requirements-runtime.lock").read_text())["apache-beam"][0]
    assert beam == pins((REPO / "requirements.lock").read_text())["apache-beam"][0]
    digest = re.fullmatch(rf"apache/beam_python{re.escape(python)}_sdk@sha256:[0-9a-f]{{64}}", base)
    assert digest or base == f"apache/beam_python{python}_sdk:{beam}"
    if not digest:  # pinned by tag: the file must say how to pin the digest
        assert f"imagetools inspect apache/beam_python{python}_sdk:{beam}" in DOCKERFILE.read_text()


def test_the_runtime_lock_is_synced_with_hashes_and_bytecode_then_checked(steps) -> None:
    install = install_step(steps)
    assert build_args(steps)["RUNTIME_LOCK"] == "requirements-runtime.lock"
    sync = re.search(r"/tmp/uv/bin/uv pip sync ([^&]+)", install)[1].split()
    assert sync[-1] == "/tmp/build/${RUNTIME_LOCK}"
    assert {"--system", "--require-hashes", "--compile-bytecode", "--no-cache"} <= set(sync[:-1])
    order = [
        "pip install --no-cache-dir --disable-pip-version-check --target /tmp/uv uv==${UV_VERSION}",
        "/tmp/uv/bin/uv pip sync",
        "/tmp/uv/bin/uv pip check --system",
        "rm -rf /tmp/uv",
        "python /tmp/build/lockfile.py check /tmp/build/${RUNTIME_LOCK}",
        "rm -rf /tmp/build",
    ]
    positions = [install.index(part) for part in order]
    assert positions == sorted(positions)
    assert install.count("&&") == len(order) - 1  # one chain: any failing step fails the build


def test_nothing_else_installs_packages(steps) -> None:
    installs = [run for run in args_of(steps, "RUN") if re.search(r"pip install|uv pip|conda|apt-get", run)]
    assert installs == [install_step(steps)]
    assert re.findall(r"pip install .*?(\S+==\S+)", install_step(steps)) == ["uv==${UV_VERSION}"]


def test_uv_in_the_image_build_is_the_makefiles(steps) -> None:
    assert build_args(steps)["UV_VERSION"] == makefile_variable("UV_VERSION")


def test_the_gpu_loader_step_does_nothing_without_the_nvidia_wheels(steps) -> None:
    (gpu,) = [run for run in args_of(steps, "RUN") if "ldconfig" in run]
    assert re.search(r'if \[ -d "\$site/nvidia" \]; then .*ldconfig.*; fi$', gpu)


def test_only_code_configs_and_the_build_files_are_copied(steps) -> None:
    copies = [args.split() for args in args_of(steps, "COPY")]
    copied = {source for *sources, _ in copies for source in sources}
    assert copied == {*CODE, *BUILD_FILES}
    assert [target for *sources, target in copies if set(sources) == set(BUILD_FILES)] == ["/tmp/build/"]
    assert args_of(steps, "ADD") == []
    for source in copied:
        assert (REPO / source).exists(), source


def test_entrypoint_of_the_base_image_is_kept(steps) -> None:
    assert args_of(steps, "ENTRYPOINT") == []
    assert args_of(steps, "CMD") == []


def test_keras_choice_code_path_and_beams_default_environment_are_set(steps) -> None:
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args_of(steps, "ENV"))))
    assert env["TF_USE_LEGACY_KERAS"] == TRAINING_ENV["TF_USE_LEGACY_KERAS"] == "1"
    assert env["PYTHONPATH"] == args_of(steps, "WORKDIR")[-1] == "/pipeline"
    assert env["RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT"] == "1"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^export TF_USE_LEGACY_KERAS := 1$", makefile, re.MULTILINE)


def test_the_offline_rehearsal_reads_the_same_image(steps) -> None:
    image = read_dockerfile(DOCKERFILE)
    assert image.workdir == "/pipeline"
    assert {source for source, target in image.copies if target == source} == set(CODE)
    assert image.env == dict(re.findall(r"(\w+)=(\S+)", " ".join(args_of(steps, "ENV"))))


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore-style `patterns` exclude `path` or one of its parent folders; as in
    Docker, the last matching pattern decides and `!pattern` brings a path back."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    excluded = False
    for line in patterns:
        pattern = line.removeprefix("!")
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], bare) for p in prefixes):
            excluded = not line.startswith("!")
    return excluded


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
    for path in (
        "pipeline/pipeline.py",
        "models/model.py",
        "configs/vertex-prod.yaml",
        "schema/schema.pbtxt",
        *BUILD_FILES,
    ):
        assert not ignored(path, patterns), path
