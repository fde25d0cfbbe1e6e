"""Pipeline configuration: YAML files merged in order, validated into one typed model.

Every problem in a config file is reported as a single line naming the file, the key and what
was expected, before any pipeline work starts. Types are strict (`train_steps: true` is not 1,
`batch_size: 256.0` is not 256), numbers finite (no `.inf`, no `.nan`), and bounds are those the
pipeline's TFX components can honour, so a bad value never gets as far as TFX.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from components import eval_metrics, serving_checks
from components.cloud_labels import LABEL_KEY, LABEL_VALUE, MAX_LABELS
from components.serving_checks import Task
from pipeline.deploy_config import EndpointConfig, RegistryConfig, SmokeTestConfig
from pipeline.image import require_digest
from pipeline.paths import CONFIG_DIR

BASE_CONFIG = CONFIG_DIR / "base.yaml"
LOCAL_CONFIG = CONFIG_DIR / "local.yaml"
VERTEX_CONFIG_PREFIX = "vertex-"


class ConfigError(Exception):
    """A configuration that cannot be used; the message is one line meant for the user."""


# CsvExampleGen splits the rows by hash into this many buckets (pipeline.create_components): the
# eval share is a whole number of them.
HASH_BUCKETS = 100
# TFX's TrainArgs and EvalArgs hold num_steps as a 32-bit integer.
MAX_STEPS = 2**31 - 1
# Cell values read as missing by default, besides the empty cell (data.missing_values).
DEFAULT_MISSING_VALUES = ("", "NA", "N/A", "null")
MAX_MISSING_TOKEN = 64


class _Strict(BaseModel):
    # strict: no quiet conversions (true -> 1, "5" -> 5, 2.0 -> 2); an int is still a valid float.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class DataConfig(_Strict):
    path: str | None = Field(default=None, description="Folder of CSV files; null = the example's, in tfx.")
    eval_fraction: float = 0.33
    # Cell values that mean "no value", as an empty cell does (an empty cell always does): CsvExampleGen
    # writes them as a feature without a value, and the preflight check and `make schema` read them so.
    missing_values: list[str] = list(DEFAULT_MISSING_VALUES)

    @field_validator("missing_values")
    @classmethod
    def _one_line_tokens(cls, tokens: list[str]) -> list[str]:
        for token in tokens:
            if "\n" in token or "\r" in token or len(token) > MAX_MISSING_TOKEN:
                raise ValueError(f"each value is one line of at most {MAX_MISSING_TOKEN} characters (got {token!r})")
        return tokens

    @property
    def missing_tokens(self) -> tuple[str, ...]:
        """Every cell value read as missing: the empty cell and `missing_values`."""
        return tuple(dict.fromkeys(["", *self.missing_values]))

    @field_validator("eval_fraction")
    @classmethod
    def _whole_hash_buckets(cls, fraction: float) -> float:
        buckets = fraction * HASH_BUCKETS
        if not 1 <= round(buckets) < HASH_BUCKETS or abs(buckets - round(buckets)) > 1e-9:
            raise ValueError(
                f"expected 0.01 to 0.99 in steps of 0.01: rows are split by hash into {HASH_BUCKETS} buckets and the "
                f"eval split takes a whole number of them (got {fraction!r})"
            )
        return fraction


class TrainingConfig(_Strict):
    train_steps: int = Field(gt=0, le=MAX_STEPS)
    eval_steps: int = Field(gt=0, le=MAX_STEPS)
    batch_size: int = Field(gt=0, le=MAX_STEPS)
    learning_rate: float = Field(gt=0)
    hidden_units: list[PositiveInt] = Field(min_length=1)


class BlessingConfig(_Strict):
    """When the Evaluator blesses a model: its `metric` over the eval split between `minimum` and
    `maximum`, and no more than `max_drop` worse than the baseline's (the last registered model).

    For a metric where higher is better (auc, accuracy) `minimum` is the bar and `maximum` an optional
    ceiling: a score above it is too good to be true (most often a label that leaks into the
    features) and is not blessed. For an error (mae, mse, rmse) `maximum` is the bar and `minimum`
    the optional floor. `max_drop`: how much worse than the baseline (lower, or for an error higher);
    null = not compared with the baseline.
    """

    metric: str
    minimum: float | None = None
    maximum: float | None = None
    max_drop: float | None = Field(default=None, ge=0)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        if name not in eval_metrics.ALL_METRIC_NAMES:
            raise ValueError(f"expected one of {', '.join(eval_metrics.ALL_METRIC_NAMES)} (got {name!r})")
        return name

    @model_validator(mode="after")
    def _bounds(self) -> BlessingConfig:
        bar = "minimum" if eval_metrics.higher_is_better(self.metric) else "maximum"
        if getattr(self, bar) is None:
            better = "higher" if bar == "minimum" else "lower"
            raise ValueError(f"{bar} is required: the bar {self.metric} must reach to be blessed ({better} is better)")
        if self.minimum is not None and self.maximum is not None and self.minimum >= self.maximum:
            raise ValueError(f"minimum ({self.minimum}) must be below maximum ({self.maximum})")
        return self

    @property
    def higher_is_better(self) -> bool:
        return eval_metrics.higher_is_better(self.metric)


class EvaluationConfig(_Strict):
    # Reported besides the blessing metric and the example count (names: see BlessingConfig).
    metrics: list[str] = []
    blessing: BlessingConfig
    slice_features: list[str] = []

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in eval_metrics.ALL_METRIC_NAMES]
        if unknown:
            raise ValueError(f"expected names from {', '.join(eval_metrics.ALL_METRIC_NAMES)} (got {unknown})")
        return names

    @property
    def metric_names(self) -> list[str]:
        """The blessing metric first, then the other reported ones."""
        return list(dict.fromkeys([self.blessing.metric, *self.metrics]))


class BeamConfig(_Strict):
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    direct_num_workers: int = Field(default=1, ge=0)


class LocalRunnerConfig(_Strict):
    kind: Literal["local"]
    output_dir: str
    enable_cache: bool = True
    beam: BeamConfig = BeamConfig()


GCS_PATH = r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/\S*)?$"
SERVICE_ACCOUNT = r"^[a-z0-9][a-z0-9-]*@[a-z0-9-]+(\.[a-z0-9-]+)*\.gserviceaccount\.com$"
PROJECT_ID = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"
REGION = r"^[a-z]+-[a-z]+[0-9]+$"
NETWORK = r"^projects/[0-9]+/global/networks/[a-z]([a-z0-9-]*[a-z0-9])?$"
SUBNETWORK = (
    r"^(https://www\.googleapis\.com/compute/v1/projects/[a-z0-9-]+/)?regions/[a-z0-9-]+/subnetworks/[a-z0-9-]+$"
)
MACHINE_TYPE = r"^[a-z][a-z0-9-]*$"
ACCELERATOR = r"^(NVIDIA_[A-Z0-9_]+|TPU_[A-Z0-9_]+)$"
CRON = r"^((CRON_)?TZ=\S+ )?\S+( \S+){4}$"
# What a pattern means, for error messages ("expected ...") instead of the regular expression.
PATTERN_HINTS = {
    GCS_PATH: "a gs:// path such as gs://BUCKET/FOLDER",
    SERVICE_ACCOUNT: "a service account email such as NAME@PROJECT.iam.gserviceaccount.com",
    PROJECT_ID: "a project ID (6 to 30 lowercase letters, digits and hyphens)",
    REGION: "a region such as us-central1",
    NETWORK: "projects/<project NUMBER>/global/networks/<name>",
    SUBNETWORK: "regions/<region>/subnetworks/<name>, or the full URL for a Shared VPC subnetwork",
    MACHINE_TYPE: "a machine type such as n1-standard-4",
    ACCELERATOR: "an accelerator type such as NVIDIA_L4, or null",
    CRON: "five cron fields, optionally after TZ=<time zone>, such as 'TZ=Etc/UTC 0 3 * * 1'",
}
# Google Cloud label rules (Vertex AI, Dataflow): lowercase letters, digits, '_' and '-', at most 63.


class ScheduleConfig(_Strict):
    # Five cron fields, optionally prefixed with a time zone: "TZ=Europe/Berlin 0 3 * * 1".
    cron: str = Field(pattern=CRON)
    max_concurrent_runs: PositiveInt = 1


class DataflowConfig(_Strict):
    service_account: str = Field(pattern=SERVICE_ACCOUNT, description="Identity of the Dataflow workers.")
    machine_type: str = Field(default="n1-standard-4", pattern=MACHINE_TYPE)
    max_workers: PositiveInt = 4
    disk_size_gb: int = Field(default=50, ge=10, le=65536)
    # regions/REGION/subnetworks/NAME, or the full URL for a Shared VPC subnetwork.
    subnetwork: str | None = Field(default=None, pattern=SUBNETWORK)
    use_public_ips: bool = False
    # null = derived from runner.pipeline_root (see VertexRunnerConfig).
    temp_location: str | None = Field(default=None, pattern=GCS_PATH)
    staging_location: str | None = Field(default=None, pattern=GCS_PATH)


class VertexTrainingConfig(_Strict):
    machine_type: str = Field(default="n1-standard-4", pattern=MACHINE_TYPE)
    accelerator_type: str | None = Field(default=None, pattern=ACCELERATOR)
    accelerator_count: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _accelerator_count_matches_type(self) -> VertexTrainingConfig:
        if self.accelerator_type and self.accelerator_count == 0:
            raise ValueError(f"accelerator_type {self.accelerator_type} needs accelerator_count of at least 1")
        if not self.accelerator_type and self.accelerator_count:
            raise ValueError("accelerator_count needs an accelerator_type (e.g. NVIDIA_L4)")
        return self


class VertexRunnerConfig(_Strict):
    kind: Literal["vertex"]
    project: str = Field(pattern=PROJECT_ID)
    region: str = Field(pattern=REGION)
    pipeline_root: str = Field(pattern=GCS_PATH)
    service_account: str = Field(pattern=SERVICE_ACCOUNT, description="Identity the pipeline runs as.")
    # VPC peering for the pipeline's steps; Vertex AI wants the project NUMBER here. null = no peering.
    network: str | None = Field(default=None, pattern=NETWORK)
    labels: dict[str, str] = {}
    enable_cache: bool = True
    schedule: ScheduleConfig | None = None
    # Default pipeline image; `--image` on the command line wins.
    image: str | None = None
    dataflow: DataflowConfig
    training: VertexTrainingConfig = VertexTrainingConfig()

    @field_validator("labels")
    @classmethod
    def _labels_follow_google_cloud_rules(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > MAX_LABELS:
            raise ValueError(f"at most {MAX_LABELS} labels are allowed, got {len(labels)}")
        for key, value in labels.items():
            if not LABEL_KEY.fullmatch(key):
                raise ValueError(
                    f"label key {key!r} must start with a lowercase letter and use only lowercase letters, "
                    "digits, '_' and '-' (at most 63)"
                )
            if not LABEL_VALUE.fullmatch(value):
                raise ValueError(
                    f"label {key}: value {value!r} may use only lowercase letters, digits, '_' and '-' (at most 63)"
                )
        return labels

    @field_validator("image")
    @classmethod
    def _image_pinned_by_digest(cls, image: str | None) -> str | None:
        return None if image is None else require_digest(image)

    @property
    def root(self) -> str:
        return self.pipeline_root.rstrip("/")

    @property
    def dataflow_temp_location(self) -> str:
        return self.dataflow.temp_location or f"{self.root}/dataflow/tmp"

    @property
    def dataflow_staging_location(self) -> str:
        return self.dataflow.staging_location or f"{self.root}/dataflow/staging"


RunnerConfig = Annotated[LocalRunnerConfig | VertexRunnerConfig, Field(discriminator="kind")]


class FastPathsConfig(_Strict):
    """The fast paths of components/fast/: each one on (the default) or TFX's stock behaviour.

    `fast_paths: false` turns them all off; `fast_paths: {csv_examples: false}` one of them. Each
    gives the same output as the stock path (tests/components/fast/); off is for ruling them out
    when something looks wrong, and for checking a library upgrade.
    """

    # CsvExampleGen's block-wise executor (on Dataflow it runs TFX's own conversion either way).
    csv_examples: bool = True
    # The Evaluator's `module_path`: TFMA's extractors with each batch trimmed.
    eval_extractors: bool = True
    # The exported SavedModel holds the Transform graph without TFT's Keras layer.
    transform_export: bool = True
    # AutoGraph leaves tf-keras's training loop alone in the Trainer.
    autograph: bool = True

    @model_validator(mode="before")
    @classmethod
    def _all_or_nothing(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return dict.fromkeys(cls.model_fields, value)
        return value


class PipelineConfig(_Strict):
    pipeline_name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    data: DataConfig = DataConfig()
    schema_path: str | None = None
    training: TrainingConfig
    evaluation: EvaluationConfig
    runner: RunnerConfig
    fast_paths: FastPathsConfig = FastPathsConfig()
    # Vertex AI only (pipeline/deploy_config.py): the Model Registry model blessed models become
    # versions of, and the endpoint `python -m pipeline promote` manages.
    registry: RegistryConfig | None = None
    endpoint: EndpointConfig | None = None
    # The file that set each key (load_config), for one-line errors found after validation.
    _sources: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)

    def source_of(self, *location: str) -> str:
        """The config file that set `location` (a dotted key's parts), or 'config' when unknown."""
        return _source_of(location, self._sources) or "config"

    @property
    def serving_instances_path(self) -> Path:
        """The serving instances: what the endpoint's smoke test sends after a deploy, and what the
        pipeline's smoke test sends to every blessed model (`endpoint.smoke_test.instances_file`)."""
        smoke_test = self.endpoint.smoke_test if self.endpoint else SmokeTestConfig()
        return smoke_test.instances_path


def vertex_config_path(env: str) -> Path:
    """configs/vertex-<env>.yaml, the environment file for `--env <env>`."""
    path = CONFIG_DIR / f"{VERTEX_CONFIG_PREFIX}{env}.yaml"
    if not path.is_file():
        files = CONFIG_DIR.glob(f"{VERTEX_CONFIG_PREFIX}*.yaml")
        known = sorted(file.stem.removeprefix(VERTEX_CONFIG_PREFIX) for file in files)
        raise ConfigError(f"{path}: no such environment '{env}' (known: {', '.join(known) or 'none'})")
    return path


def config_name(path: Path | str) -> str:
    """The name of an environment file as it appears in labels and build paths: 'vertex-dev'."""
    return Path(path).stem


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
        config = PipelineConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_describe(error, sources, [str(f) for f in files])) from None
    _check_runner_constraints(config, sources, [str(f) for f in files])
    config._sources = dict(sources)
    return config


def check_against_model(
    config: PipelineConfig,
    *,
    task: Task,
    features: Sequence[str],
    columns: Mapping[str, str | None] | None,
    columns_from: str = "the schema",
) -> list[dict[str, Any]]:
    """Raises ConfigError, one line, where the config does not fit the model's declarations or the
    data's columns; returns the serving instances.

    Checked: the evaluation metrics apply to the task (models/label.py); every slice feature is a
    column; the serving instances carry exactly the model's `features`, each value of its column's
    type. `columns` maps each column (of the schema, or of the data's header) to 'int', 'float' or
    'string' (None: type not known); `columns` None when not known here (a schema in Cloud Storage
    and data there too), which skips the column checks.
    """
    for location, names in (
        (("evaluation", "blessing", "metric"), [config.evaluation.blessing.metric]),
        (("evaluation", "metrics"), config.evaluation.metrics),
    ):
        for name in names:
            try:
                eval_metrics.definition(name, task)
            except KeyError as error:
                raise ConfigError(
                    f"{config.source_of(*location)}: {'.'.join(location)}: {error.args[0]} "
                    f"(the task in models/label.py: {task.describe()})"
                ) from None
    if columns is not None:
        for name in config.evaluation.slice_features:
            if name not in columns:
                raise ConfigError(
                    f"{config.source_of('evaluation', 'slice_features')}: evaluation.slice_features: '{name}' is not "
                    f"a column of {columns_from} (its columns: {', '.join(sorted(columns))})"
                )
    path = config.serving_instances_path
    instances = read_serving_instances(path)
    problems = serving_checks.instance_problems(instances, features)
    if columns is not None:
        types = {name: columns[name] for name in features if name in columns}
        problems += serving_checks.value_type_problems(instances, types)
    if problems:
        raise ConfigError(
            f"{path}: {problems[0]} (the serving instances carry exactly the model's features, models/features.py, "
            f"typed as in {columns_from})"
        )
    return instances


def read_serving_instances(path: Path) -> list[dict[str, Any]]:
    """The JSON list of serving instances in `path`, unchecked; ConfigError when it cannot be read."""
    try:
        instances = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the serving instances ({error.strerror})") from None
    except ValueError as error:
        raise ConfigError(f"{path}: not JSON: {error}") from None
    if not isinstance(instances, list):
        raise ConfigError(f"{path}: expected a JSON list of instances, got {type(instances).__name__}")
    return instances


def schema_column_types(schema: Any) -> dict[str, str]:  # tensorflow_metadata Schema proto
    """Each feature of a schema as 'int', 'float' or 'string' (the JSON type a serving instance gives it)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    kinds = {schema_pb2.INT: "int", schema_pb2.FLOAT: "float"}
    return {feature.name: kinds.get(feature.type, "string") for feature in schema.feature}


def _check_runner_constraints(config: PipelineConfig, sources: dict[tuple[str, ...], str], files: list[str]) -> None:
    """Rules spanning sections: steps on Vertex AI and Dataflow read their inputs from Cloud Storage."""
    if not isinstance(config.runner, VertexRunnerConfig):
        for section in ("registry", "endpoint"):
            if getattr(config, section) is not None:
                source = _source_of((section,), sources) or " + ".join(files)
                raise ConfigError(
                    f"{source}: {section}: only runner 'vertex' uses it (runner.kind is '{config.runner.kind}')"
                )
        return
    schema_path = config.schema_path
    if schema_path is not None and "://" not in schema_path and not _inside_the_image(schema_path):
        source = _source_of(("schema_path",), sources) or " + ".join(files)
        raise ConfigError(
            f"{source}: schema_path: runner 'vertex' reads it from the pipeline image, expected a path relative "
            f"to the repository such as schema/schema.pbtxt (the Dockerfile copies schema/), a gs:// path, or "
            f"null (got {schema_path!r})"
        )
    checks = [(("data", "path"), config.data.path, "a gs:// folder of CSV files")]
    if schema_path is not None and "://" in schema_path:
        checks.append((("schema_path",), schema_path, "a gs:// path to schema.pbtxt, or a relative path"))
    for location, value, expected in checks:
        if value is None or not re.match(GCS_PATH, value):
            # An unset value is the fault of the file that chose the vertex runner.
            source = _source_of(location if value is not None else ("runner", "kind"), sources)
            source = source or " + ".join(files)
            raise ConfigError(
                f"{source}: {'.'.join(location)}: runner 'vertex' reads it from Google Cloud, "
                f"expected {expected} (got {value!r})"
            )


def _inside_the_image(path: str) -> bool:
    """A relative path that stays inside the repository, whose files the image holds."""
    parts = Path(path).parts
    return bool(parts) and not Path(path).is_absolute() and not path.startswith("~") and ".." not in parts


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
            sources.pop(path, None)  # re-inserted: `sources` lists keys in the order they were set
            sources[path] = source
            if isinstance(value, dict):
                _record_leaves(value, source, sources, path)


def _record_leaves(
    value: Mapping[str, Any], source: str, sources: dict[tuple[str, ...], str], prefix: tuple[str, ...]
) -> None:
    for key, child in value.items():
        sources.pop((*prefix, str(key)), None)
        sources[(*prefix, str(key))] = source
        if isinstance(child, dict):
            _record_leaves(child, source, sources, (*prefix, str(key)))


def _describe(error: ValidationError, sources: dict[tuple[str, ...], str], files: list[str]) -> str:
    """One line for the first validation error: file, dotted key, what was expected."""
    priority = {"extra_forbidden": 0, "missing": 2}
    first = min(error.errors(), key=lambda e: priority.get(e["type"], 1))
    location, holder = _clean_location(tuple(str(part) for part in first["loc"]))
    key = ".".join(location) or "(top level)"
    source = _source_of(location, sources) or " + ".join(files)
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = list(holder.model_fields) if holder else []
        return f"{source}: unknown key '{key}' (allowed here: {', '.join(allowed)})"
    if kind == "missing":
        return f"{source}: missing required key '{key}'"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        discriminator = first["ctx"]["discriminator"].strip("'")
        expected = ", ".join(f"'{tag}'" for tag in _tags_at(location))
        source = _source_of((*location, discriminator), sources) or source
        if kind == "union_tag_not_found":
            return f"{source}: missing required key '{key}.{discriminator}' (one of {expected})"
        return f"{source}: {key}.{discriminator}: expected one of {expected} (got {first['ctx']['tag']!r})"
    if kind == "value_error":
        return f"{source}: {key}: {first['ctx']['error']}"
    if kind == "string_pattern_mismatch" and first["ctx"]["pattern"] in PATTERN_HINTS:
        return f"{source}: {key}: expected {PATTERN_HINTS[first['ctx']['pattern']]} (got {first['input']!r})"
    bound = first.get("ctx", {}).get("le")
    why = ", as TFX holds it in a 32-bit integer" if kind == "less_than_equal" and bound == MAX_STEPS else ""
    return f"{source}: {key}: {first['msg'][0].lower()}{first['msg'][1:]}{why} (got {first['input']!r})"


def _source_of(location: tuple[str, ...], sources: dict[tuple[str, ...], str]) -> str | None:
    """The file that last set `location` or a key under it (a section-wide rule is most likely
    broken by the last file that touched the section), else the file that set its parent."""
    within = [source for path, source in sources.items() if path[: len(location)] == location]
    if location and within:
        return within[-1]
    for end in range(len(location), 0, -1):
        if location[:end] in sources:
            return sources[location[:end]]
    return None


def _clean_location(location: tuple[str, ...]) -> tuple[tuple[str, ...], type[BaseModel] | None]:
    """The error location without pydantic's union tags, as keys appear in the YAML
    (('runner', 'vertex', 'project') -> ('runner', 'project')), and the model holding its last key."""
    model: type[BaseModel] | None = PipelineConfig
    holder = model
    clean: list[str] = []
    remaining = list(location)
    while remaining:
        part = remaining.pop(0)
        clean.append(part)
        holder = model
        field = model.model_fields.get(part) if model else None
        candidates = _models_in(field.annotation) if field else []
        tags = {_tag_of(candidate): candidate for candidate in candidates}
        if len(candidates) > 1 and remaining and remaining[0] in tags:
            model = tags[remaining.pop(0)]
        else:
            model = candidates[0] if len(candidates) == 1 else None
    return tuple(clean), holder


def _tags_at(location: tuple[str, ...]) -> list[str]:
    """The discriminator values allowed for the union at `location` ('local', 'vertex' for runner)."""
    _, holder = _clean_location(location)
    field = holder.model_fields.get(location[-1]) if holder and location else None
    return [tag for tag in (_tag_of(model) for model in _models_in(field.annotation)) if tag] if field else []


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds: Model, Model | None, or a union of models."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]
    # typing.get_origin: dict[str, str] passes isinstance(..., type) on Python 3.10.
    if typing.get_origin(annotation) is None and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _tag_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    if field is not None and typing.get_origin(field.annotation) is Literal:
        return typing.get_args(field.annotation)[0]
    return None
