"""Pipeline configuration: YAML files merged in order, validated into one typed model.

Every problem in a config file is reported as a single line naming the file, the key and what
was expected, before any pipeline work starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
BASE_CONFIG = CONFIG_DIR / "base.yaml"
LOCAL_CONFIG = CONFIG_DIR / "local.yaml"


class ConfigError(Exception):
    """A configuration that cannot be used; the message is one line meant for the user."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    path: str | None = Field(default=None, description="Folder of CSV files; null = the taxi sample shipped with tfx.")
    eval_fraction: float = Field(default=0.33, gt=0, lt=1)


class TrainingConfig(_Strict):
    train_steps: int = Field(gt=0)
    eval_steps: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    learning_rate: float = Field(gt=0)
    hidden_units: list[PositiveInt] = Field(min_length=1)


class EvaluationConfig(_Strict):
    min_auc: float = Field(ge=0, le=1)
    max_auc_drop: float = Field(ge=0, le=1)
    slice_features: list[str] = []


class BeamConfig(_Strict):
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    direct_num_workers: int = Field(default=1, ge=0)


class LocalRunnerConfig(_Strict):
    kind: Literal["local"]
    output_dir: str
    enable_cache: bool = True
    beam: BeamConfig = BeamConfig()


class PipelineConfig(_Strict):
    pipeline_name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    data: DataConfig = DataConfig()
    schema_path: str | None = None
    training: TrainingConfig
    evaluation: EvaluationConfig
    runner: LocalRunnerConfig


def load_config(
    files: Sequence[Path | str] = (BASE_CONFIG, LOCAL_CONFIG),
    overrides: Mapping[str, Any] | None = None,
) -> PipelineConfig:
    """Merges the YAML files in order, then `overrides` ({"data.path": ...}), and validates.

    Later files win key by key; lists are replaced, not appended.
    """
    merged: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    for file in files:
        _merge(merged, _read_yaml(Path(file)), str(file), sources, ())
    for dotted_key, value in (overrides or {}).items():
        layer: dict[str, Any] = value
        for part in reversed(dotted_key.split(".")):
            layer = {part: layer}
        _merge(merged, layer, f"override {dotted_key}", sources, ())
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_describe(error, sources, [str(f) for f in files])) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file ({error.strerror})") from None
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(content).__name__}")
    return content


def _merge(
    target: dict[str, Any],
    layer: Mapping[str, Any],
    source: str,
    sources: dict[tuple[str, ...], str],
    prefix: tuple[str, ...],
) -> None:
    for key, value in layer.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, source, sources, path)
        else:
            target[key] = value
            sources[path] = source
            if isinstance(value, dict):
                _record_leaves(value, source, sources, path)


def _record_leaves(
    value: Mapping[str, Any], source: str, sources: dict[tuple[str, ...], str], prefix: tuple[str, ...]
) -> None:
    for key, child in value.items():
        sources[(*prefix, str(key))] = source
        if isinstance(child, dict):
            _record_leaves(child, source, sources, (*prefix, str(key)))


def _describe(error: ValidationError, sources: dict[tuple[str, ...], str], files: list[str]) -> str:
    """One line for the first validation error: file, dotted key, what was expected."""
    priority = {"extra_forbidden": 0, "missing": 2}
    first = min(error.errors(), key=lambda e: priority.get(e["type"], 1))
    location = tuple(str(part) for part in first["loc"])
    key = ".".join(location) or "(top level)"
    source = _source_of(location, sources) or " + ".join(files)
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(location[:-1])
        return f"{source}: unknown key '{key}' (allowed here: {', '.join(allowed)})"
    if kind == "missing":
        return f"{source}: missing required key '{key}'"
    return f"{source}: {key}: {first['msg'][0].lower()}{first['msg'][1:]} (got {first['input']!r})"


def _source_of(location: tuple[str, ...], sources: dict[tuple[str, ...], str]) -> str | None:
    for end in range(len(location), 0, -1):
        if location[:end] in sources:
            return sources[location[:end]]
    return None


def _allowed_keys(parent: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = PipelineConfig
    for part in parent:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
