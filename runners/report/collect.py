"""What one local run produced, read from ML Metadata and its artifacts, as plain data to render.

A run is a `pipeline_run` context in ML Metadata (its name is the run id LocalDagRunner gave it, a
timestamp). Each component's execution in that context, computed or served from the cache, has
its output artifacts as events; the report reads exactly those, so a past run's report shows that
run's numbers even after later runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components import anomaly_text, eval_metrics
from models.label import TASK
from pipeline import pipeline as tfx_pipeline
from pipeline.config import PipelineConfig

PIPELINE_RUN = "pipeline_run"
NODE = "node"
_INPUTS = (metadata_store_pb2.Event.INPUT,)
_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
TOP_VALUES = 8


class ReportError(Exception):
    """No such run, or no metadata at all; the message is one line for the user."""


@dataclass(frozen=True)
class NumericStats:
    mean: float
    std_dev: float
    min: float
    median: float | None
    max: float
    zeros: int
    buckets: list[tuple[float, float, float]]


@dataclass(frozen=True)
class StringStats:
    unique: int
    top: list[tuple[str, float]]


@dataclass(frozen=True)
class FeatureStats:
    name: str
    type: str
    rows: int
    filled: int
    numeric: NumericStats | None = None
    strings: StringStats | None = None


@dataclass(frozen=True)
class SplitStats:
    split: str
    rows: int
    features: dict[str, FeatureStats]


@dataclass(frozen=True)
class SchemaRow:
    name: str
    type: str
    presence: str
    domain: str
    environments: str


@dataclass(frozen=True)
class SliceMetrics:
    """One slice's metrics by key (`auc`, `auc[setosa]`, `auc (macro average)`); None: undefined, why in `undefined`."""

    name: str
    values: dict[str, float | None]
    baseline: dict[str, float | None] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Threshold:
    metric: str
    text: str
    lower_bound: float | None
    slices: str = "every slice"
    upper_bound: float | None = None
    higher_is_better: bool = True

    @property
    def bar(self) -> float | None:
        """The bound a value must reach: the lower one when higher is better, else the upper one."""
        return self.lower_bound if self.higher_is_better else self.upper_bound


@dataclass(frozen=True)
class Signature:
    name: str
    inputs: list[str]
    outputs: list[str]


@dataclass
class RunData:
    pipeline_name: str
    run_id: str
    executions: dict[str, str] = field(default_factory=dict)
    statistics: list[SplitStats] = field(default_factory=list)
    anomalies: list[anomaly_text.Anomaly] | None = None
    schema_uri: str | None = None
    schema_text: str | None = None
    schema_rows: list[SchemaRow] = field(default_factory=list)
    metrics: list[SliceMetrics] = field(default_factory=list)
    thresholds: list[Threshold] = field(default_factory=list)
    # Why the Evaluator did not bless, in plain words (components/eval_metrics.py).
    blessing_failures: list[str] = field(default_factory=list)
    task_description: str = ""
    blessed: bool | None = None
    candidate_model: str | None = None
    baseline_model: str | None = None
    signatures: list[Signature] = field(default_factory=list)
    pushed_model: str | None = None


def open_store(config: PipelineConfig) -> metadata_store.MetadataStore:
    path = tfx_pipeline.metadata_path(config)
    if not path.is_file():
        raise ReportError(f"no run yet: {path} does not exist (run `make run-local` first, or give --output-dir)")
    return tfx_pipeline.metadata_store(config)


def run_ids(store: metadata_store.MetadataStore) -> list[str]:
    """Every run id, oldest first."""
    return [context.name for context in sorted(store.get_contexts_by_type(PIPELINE_RUN), key=lambda c: c.id)]


def collect(config: PipelineConfig, run_id: str | None = None) -> RunData:
    store = open_store(config)
    known = run_ids(store)
    if not known:
        raise ReportError(f"no run recorded in {tfx_pipeline.metadata_path(config)}")
    run_id = run_id or known[-1]
    run = store.get_context_by_type_and_name(PIPELINE_RUN, run_id)
    if run is None:
        raise ReportError(f"no run '{run_id}' (latest runs: {', '.join(known[-5:])})")
    data = RunData(pipeline_name=config.pipeline_name, run_id=run_id, task_description=TASK.describe())
    executions = _executions_by_component(store, run, config.pipeline_name)
    data.executions = {component: _state(execution) for component, execution in executions.items()}
    outputs = {component: _artifacts(store, execution.id, _OUTPUTS) for component, execution in executions.items()}

    schema = _read_schema(data, outputs.get(tfx_pipeline.SCHEMA_GEN, {}))
    for artifact in outputs.get(tfx_pipeline.STATISTICS_GEN, {}).get("statistics", []):
        data.statistics = _read_statistics(artifact.uri)
    for artifact in outputs.get(tfx_pipeline.EXAMPLE_VALIDATOR, {}).get("anomalies", []):
        data.anomalies = _read_anomalies(artifact, schema)
    for artifact in outputs.get(tfx_pipeline.TRAINER, {}).get("model", []):
        data.candidate_model = artifact.uri
        data.signatures = _read_signatures(artifact.uri)
    evaluator = outputs.get(tfx_pipeline.EVALUATOR, {})
    for artifact in evaluator.get("evaluation", []):
        _read_evaluation(data, artifact.uri)
    for artifact in evaluator.get("blessing", []):
        data.blessed = artifact.custom_properties["blessed"].int_value == 1
    if tfx_pipeline.EVALUATOR in executions:
        inputs = _artifacts(store, executions[tfx_pipeline.EVALUATOR].id, _INPUTS)
        data.baseline_model = next((a.uri for a in inputs.get("baseline_model", [])), None)
    for artifact in outputs.get(tfx_pipeline.PUSHER, {}).get("pushed_model", []):
        if artifact.custom_properties["pushed"].int_value == 1:
            data.pushed_model = artifact.custom_properties["pushed_destination"].string_value
    return data


def _executions_by_component(
    store: metadata_store.MetadataStore, run: metadata_store_pb2.Context, pipeline_name: str
) -> dict[str, metadata_store_pb2.Execution]:
    """The run's execution of each component, in the order they ran (execution ids grow)."""
    node_type = store.get_context_type(NODE)
    result: dict[str, metadata_store_pb2.Execution] = {}
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        for context in store.get_contexts_by_execution(execution.id):
            if context.type_id == node_type.id:
                result[context.name.removeprefix(f"{pipeline_name}.")] = execution
    return result


def _state(execution: metadata_store_pb2.Execution) -> str:
    return metadata_store_pb2.Execution.State.Name(execution.last_known_state)


def _artifacts(
    store: metadata_store.MetadataStore, execution_id: int, kinds: tuple[int, ...]
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in kinds]
    by_id = {artifact.id: artifact for artifact in store.get_artifacts_by_id([e.artifact_id for e in events])}
    result: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        result.setdefault(key, []).append(by_id[event.artifact_id])
    return result


def _read_schema(data: RunData, outputs: dict[str, list[metadata_store_pb2.Artifact]]) -> schema_pb2.Schema | None:
    from google.protobuf import text_format

    for artifact in outputs.get("schema", []):
        path = Path(artifact.uri) / "schema.pbtxt"
        data.schema_uri = str(path)
        data.schema_text = path.read_text()
        schema = text_format.Parse(data.schema_text, schema_pb2.Schema())
        data.schema_rows = [_schema_row(feature, schema) for feature in schema.feature]
        return schema
    return None


def _schema_row(feature: schema_pb2.Feature, schema: schema_pb2.Schema) -> SchemaRow:
    if feature.shape.dim or feature.presence.min_fraction >= 1.0:
        presence = "a value in every row" if feature.shape.dim else "in every row"
    elif feature.presence.min_count > 0:
        presence = "not entirely empty"
    else:
        presence = "optional"
    domain = ""
    kind = feature.WhichOneof("domain_info")
    if kind == "domain":
        values = next((list(d.value) for d in schema.string_domain if d.name == feature.domain), [])
        domain = f"{len(values)} values: {', '.join(values[:6])}{', ...' if len(values) > 6 else ''}"
    elif kind == "string_domain":
        domain = f"{len(feature.string_domain.value)} values"
    elif kind in ("int_domain", "float_domain"):
        bounds = getattr(feature, kind)
        low = f"{bounds.min:g}" if bounds.HasField("min") else "-inf"
        high = f"{bounds.max:g}" if bounds.HasField("max") else "+inf"
        domain = f"from {low} to {high}"
    if feature.HasField("distribution_constraints"):
        domain += f" (at least {feature.distribution_constraints.min_domain_mass:.0%} in the list)"
    environments = [f"not in {name}" for name in feature.not_in_environment]
    environments += [f"only in {name}" for name in feature.in_environment]
    return SchemaRow(
        name=feature.name,
        type=schema_pb2.FeatureType.Name(feature.type),
        presence=presence,
        domain=domain,
        environments=", ".join(environments) or "all",
    )


def _read_statistics(uri: str) -> list[SplitStats]:
    result = []
    for split_dir in sorted(Path(uri).glob("Split-*"), key=_split_order):
        stats = statistics_pb2.DatasetFeatureStatisticsList.FromString((split_dir / "FeatureStats.pb").read_bytes())
        dataset = stats.datasets[0]
        features = {
            feature.path.step[0]: _feature_stats(feature, dataset.num_examples)
            for feature in dataset.features
            if feature.path.step
        }
        result.append(
            SplitStats(split_dir.name.removeprefix("Split-"), dataset.num_examples, dict(sorted(features.items())))
        )
    return result


def _split_order(split_dir: Path) -> tuple[int, str]:
    """train, eval, then any other split by name."""
    name = split_dir.name.removeprefix("Split-")
    return ({"train": 0, "eval": 1}.get(name, 2), name)


def _feature_stats(feature: statistics_pb2.FeatureNameStatistics, rows: int) -> FeatureStats:
    kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
    if feature.HasField("num_stats"):
        num = feature.num_stats
        standard = next((h for h in num.histograms if h.type == statistics_pb2.Histogram.STANDARD), None)
        quantiles = next((h for h in num.histograms if h.type == statistics_pb2.Histogram.QUANTILES), None)
        median = None
        if quantiles and quantiles.buckets:
            median = quantiles.buckets[len(quantiles.buckets) // 2].low_value
        buckets = [(b.low_value, b.high_value, b.sample_count) for b in standard.buckets] if standard else []
        numeric = NumericStats(num.mean, num.std_dev, num.min, median, num.max, int(num.num_zeros), buckets)
        filled = int(num.common_stats.tot_num_values)
        return FeatureStats(feature.path.step[0], kind, rows, min(filled, rows), numeric=numeric)
    strings = feature.string_stats
    top = [(value.value, value.frequency) for value in strings.top_values[:TOP_VALUES]]
    filled = int(strings.common_stats.tot_num_values)
    return FeatureStats(
        feature.path.step[0], kind, rows, min(filled, rows), strings=StringStats(int(strings.unique), top)
    )


def _read_anomalies(
    artifact: metadata_store_pb2.Artifact, schema: schema_pb2.Schema | None
) -> list[anomaly_text.Anomaly]:
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    per_split = {}
    for split_dir in sorted(Path(artifact.uri).glob("Split-*"), key=_split_order):
        proto = anomalies_pb2.Anomalies.FromString((split_dir / "SchemaDiff.pb").read_bytes())
        per_split[split_dir.name.removeprefix("Split-")] = anomaly_text.describe(proto, schema or schema_pb2.Schema())
    return anomaly_text.merge_splits(per_split)


def _read_evaluation(data: RunData, uri: str) -> None:
    from tensorflow_model_analysis.writers import eval_config_writer

    for result in eval_metrics.read_slices(uri, TASK):
        data.metrics.append(SliceMetrics(result.name, result.values, result.baseline, result.undefined))
    data.metrics.sort(key=_slice_order)
    data.thresholds = _thresholds(eval_config_writer.load_eval_run(uri)[0])
    data.blessing_failures = eval_metrics.blessing_failures(uri, TASK)


def _thresholds(eval_config) -> list[Threshold]:  # tfma.EvalConfig
    """Every metric's thresholds, one per metric and slices: its bounds and its change from the baseline."""
    from tensorflow_model_analysis.metrics import metric_specs
    from tensorflow_model_analysis.proto import config_pb2

    grouped: dict[tuple[str, str], dict] = {}
    for key, pairs in metric_specs.metric_thresholds_from_metrics_specs(eval_config.metrics_specs, eval_config).items():
        metric = eval_metrics.metric_id(key.to_proto()).text(TASK)
        for slice_spec, threshold in pairs:
            slices = _spec_name(slice_spec) if slice_spec is not None else "every slice"
            entry = grouped.setdefault((metric, slices), {})
            if isinstance(threshold, config_pb2.GenericValueThreshold):
                if threshold.HasField("lower_bound"):
                    entry["lower"] = threshold.lower_bound.value
                if threshold.HasField("upper_bound"):
                    entry["upper"] = threshold.upper_bound.value
            else:
                entry["change"] = threshold
    return [_threshold(metric, slices, entry) for (metric, slices), entry in grouped.items()]


def _threshold(metric: str, slices: str, entry: dict) -> Threshold:
    change = entry.get("change")
    name = metric.split("[")[0].split(" ")[0]
    try:
        higher = eval_metrics.higher_is_better(name)
    except KeyError:
        higher = True
    parts = []
    lower, upper = entry.get("lower"), entry.get("upper")
    if lower is not None:
        parts.append(f"at least {lower:g}")
    if upper is not None:
        parts.append(f"at most {upper:g}")
    if change is not None and change.HasField("absolute"):
        side = "below" if higher else "above"
        parts.append(f"no more than {abs(change.absolute.value):.4g} {side} the baseline")
    if change is not None and change.HasField("relative"):
        parts.append(f"relative change at least {change.relative.value:g}")
    text = f"{'; '.join(parts) or '(none)'} (on {slices})"
    return Threshold(metric, text, lower, slices, upper, higher)


def _spec_name(spec) -> str:  # tfma.SlicingSpec
    keys = list(spec.feature_keys) + [f"{key} = {value}" for key, value in spec.feature_values.items()]
    return ", ".join(keys) or "Overall"


def _slice_name(slice_key) -> str:  # tfma SliceKey proto
    return eval_metrics.slice_name(slice_key)


def _slice_order(metrics: SliceMetrics) -> tuple[int, str, float]:
    if metrics.name == "Overall":
        return (0, "", 0.0)
    column, _, value = metrics.name.partition(" = ")
    try:
        return (1, column, float(value))
    except ValueError:
        return (1, column + value, 0.0)


def _read_signatures(model_uri: str) -> list[Signature]:
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import dtypes

    path = os.path.join(model_uri, "Format-Serving", "saved_model.pb")
    if not os.path.exists(path):
        return []
    saved = saved_model_pb2.SavedModel.FromString(Path(path).read_bytes())
    result = []
    for name, signature in sorted(saved.meta_graphs[0].signature_def.items()):
        if name.startswith("__"):
            continue  # __saved_model_init_op: TensorFlow's own, not an entry point
        result.append(
            Signature(
                name=name,
                inputs=[_tensor(key, info, dtypes) for key, info in sorted(signature.inputs.items())],
                outputs=[_tensor(key, info, dtypes) for key, info in sorted(signature.outputs.items())],
            )
        )
    return result


def _tensor(key: str, info, dtypes) -> str:  # TensorInfo proto
    dtype = dtypes.as_dtype(info.dtype).name if info.dtype else "?"
    dims = (
        "?"
        if info.tensor_shape.unknown_rank
        else ", ".join("None" if dim.size < 0 else str(dim.size) for dim in info.tensor_shape.dim)
    )
    sparse = " (sparse)" if info.WhichOneof("encoding") == "coo_sparse" else ""
    return f"{key}: {dtype} [{dims}]{sparse}"
