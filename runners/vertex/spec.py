"""Reads back what a compiled spec (build/<env>/pipeline.json) fixes: name, root, image."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import VertexRunnerConfig


class SpecError(Exception):
    """A compiled spec that is missing or does not fit the config; the message is one line."""


@dataclass(frozen=True)
class CompiledSpec:
    path: Path
    pipeline_name: str
    pipeline_root: str | None
    images: frozenset[str]

    @property
    def image(self) -> str | None:
        """The image every executor runs, or None when executors differ."""
        return next(iter(self.images)) if len(self.images) == 1 else None


def read_spec(path: Path) -> CompiledSpec:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except OSError as error:
        raise SpecError(f"{path}: cannot read the compiled spec ({error.strerror}); run `make compile` first") from None
    except ValueError as error:
        raise SpecError(f"{path}: not a JSON pipeline spec ({error})") from None
    pipeline_spec = document.get("pipelineSpec", document)
    try:
        name = pipeline_spec["pipelineInfo"]["name"]
        executors = pipeline_spec["deploymentSpec"]["executors"]
    except (KeyError, TypeError):
        raise SpecError(f"{path}: not a KFP pipeline spec (no pipelineInfo.name or deploymentSpec)") from None
    images = frozenset(e["container"]["image"] for e in executors.values() if "container" in e)
    root = document.get("runtimeConfig", {}).get("gcsOutputDirectory") or pipeline_spec.get("defaultPipelineRoot")
    return CompiledSpec(path=path, pipeline_name=name, pipeline_root=root, images=images)


def check_spec_fits(spec: CompiledSpec, pipeline_name: str, runner: VertexRunnerConfig, config_file: str) -> None:
    """Refuses a spec compiled from another environment file (its Dataflow args, training job and
    image would run in the wrong project)."""
    if spec.pipeline_name != pipeline_name:
        raise SpecError(
            f"{spec.path} is pipeline '{spec.pipeline_name}' but {config_file} says '{pipeline_name}'; "
            "compile it again for this environment"
        )
    if spec.pipeline_root is not None and spec.pipeline_root.rstrip("/") != runner.root:
        raise SpecError(
            f"{spec.path} was compiled for pipeline root {spec.pipeline_root} but {config_file} says "
            f"{runner.pipeline_root}; compile it again for this environment"
        )
    if spec.image is None:
        raise SpecError(f"{spec.path}: executors use different images {sorted(spec.images)}; compile it again")
