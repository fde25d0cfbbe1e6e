"""Golden specs: compile dev and prod with a fixed image, normalize, compare or rewrite.

`make golden` (python -m tools.refresh_golden) rewrites tests/example/golden/<env>.json, the specs
compiled from the committed configs (the example's tests: a fork refreshes them for its own), after
an intended change; review the diff like code.

Normalized, because they change for reasons unrelated to this pipeline's definition:
- sdkVersion and the tfx_version / tfx_py_version labels: TFX and Python versions (the lock).
- source_fingerprint values, in custom_config (Transform, Trainer) and as a parameter of every
  step whose code is in this repository: hashes of that code (pipeline/fingerprint.py), so every
  code edit would touch the goldens. tests/pipeline/vertex/test_compile.py checks them against the
  current sources instead.
Nothing else in the spec is volatile: TFX writes no timestamps and the image is fixed here.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.config import load_config
from pipeline.paths import REPO_ROOT
from runners import errors

GOLDEN_DIR = REPO_ROOT / "tests" / "example" / "golden"
ENVIRONMENTS = ("dev", "prod")
# Named after the configured pipeline, as `make image` names it; the same digest in both
# environments: the image promoted from dev to prod is the one that was tested.
TEST_IMAGE = (
    f"us-central1-docker.pkg.dev/my-tfx-dev/pipelines/{load_config().pipeline_name}@sha256:" + "0123456789abcdef" * 4
)

_FINGERPRINT = re.compile(r'("source_fingerprint": ")[0-9a-f]{16}(")')
_FINGERPRINT_PARAMETER = "source_fingerprint"
_HIDDEN = "<fingerprint>"
_VERSION_LABELS = ("tfx_version", "tfx_py_version")


def compile_env(env: str, output: Path, image: str = TEST_IMAGE) -> Path:
    """`python -m pipeline compile --env ENV --image IMAGE --output OUTPUT`, in this process."""
    from runners import cli

    status = cli.main(["compile", "--env", env, "--image", image, "--output", str(output)])
    if status != errors.EXIT_OK:
        raise RuntimeError(f"compile --env {env} exited {status}")
    return output


def normalize(document: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(document)
    spec = result["pipelineSpec"]
    spec["sdkVersion"] = "tfx-<version>"
    for label in _VERSION_LABELS:
        if label in result.get("labels", {}):
            result["labels"][label] = "<version>"
    return _replace_strings(result)


def _replace_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _FINGERPRINT.sub(rf"\1{_HIDDEN}\2", value)
    if isinstance(value, dict):
        return {
            key: _hide_fingerprint(item) if key == _FINGERPRINT_PARAMETER else _replace_strings(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_replace_strings(item) for item in value]
    return value


def _hide_fingerprint(parameter: Any) -> Any:
    """A `source_fingerprint` task parameter ({"runtimeValue": {"constantValue": {"stringValue": ...}}})."""
    if isinstance(parameter, str):
        return re.sub(r"^[0-9a-f]{16}$", _HIDDEN, parameter)
    if isinstance(parameter, dict):
        return {key: _hide_fingerprint(item) for key, item in parameter.items()}
    return parameter


def render(document: dict[str, Any]) -> str:
    return json.dumps(normalize(document), indent=2, sort_keys=True) + "\n"


def golden_path(env: str) -> Path:
    return GOLDEN_DIR / f"{env}.json"


def main() -> int:
    GOLDEN_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as build:
        for env in ENVIRONMENTS:
            compiled = compile_env(env, Path(build) / env / "pipeline.json")
            golden_path(env).write_text(render(json.loads(compiled.read_text())))
            print(f"wrote {golden_path(env)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
