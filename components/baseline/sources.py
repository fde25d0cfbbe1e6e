"""Where BaselineModel looks for the models this pipeline registered: built from the config when
the pipeline is defined, handed to the executor as one JSON exec property."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LocalMetadataSource:
    """A local run: the Pusher's executions in the pipeline's ML Metadata (SQLite)."""

    sqlite_path: str
    pipeline_name: str
    pusher_node: str  # the Pusher's component id


@dataclass(frozen=True)
class RegistrySource:
    """Vertex AI: the versions of the pipeline's Model Registry model, each traced through its
    `pipeline_job` label to the run that registered it; runs of other pipelines do not count."""

    project: str
    region: str
    model_id: str
    pipeline_name: str
    registration_task: str  # ModelRegistration's component id = its task name in a run


@dataclass(frozen=True)
class NoSource:
    """Vertex AI without a `registry` section: nothing is registered, so there is never a baseline."""

    reason: str


@dataclass(frozen=True)
class RegisteredModel:
    """A model that got through registration: the Trainer's Model artifact folder, and where that is recorded."""

    uri: str
    registered_as: str


@dataclass(frozen=True)
class TrainingStatistics:
    """The statistics of the data a registered model was trained on: the StatisticsGen output folder
    of the run that registered it, and which model that is, in words."""

    uri: str
    data_of: str


BaselineSource = LocalMetadataSource | RegistrySource | NoSource
_KINDS: dict[str, type[BaselineSource]] = {
    "ml_metadata": LocalMetadataSource,
    "model_registry": RegistrySource,
    "none": NoSource,
}


def to_json(source: BaselineSource) -> str:
    kind = next(name for name, kind in _KINDS.items() if isinstance(source, kind))
    return json.dumps({"kind": kind, **asdict(source)}, sort_keys=True)


def from_json(text: str) -> BaselineSource:
    fields = json.loads(text)
    kind = fields.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"unknown baseline source kind {kind!r} (known: {', '.join(_KINDS)})")
    return _KINDS[kind](**fields)
