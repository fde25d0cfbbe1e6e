"""Executes a submitted PipelineJob the way Vertex AI Pipelines does, on this machine.

Each task of the root DAG starts once the tasks it depends on have succeeded; independent tasks run
side by side. For each task:

- its inputs are resolved: constants and pipeline parameters, and the output artifacts of the
  tasks it depends on (as recorded in ML Metadata, with the metadata their executors wrote);
- a **container** task gets an ExecutorInput built as Vertex AI builds it (parameters, input
  artifacts, output artifacts with URIs under
  `<pipeline root>/<project number>/<job id>/<task>_<task id>/<output key>`, and the
  `executor_output.json` path), then its `lifecycle.preCacheCheck` container if it has one (TFX's
  ExampleGen driver: it computes the input fingerprint that the cache key then includes), then,
  unless the cache holds an execution with the same key, the container itself. Containers run
  the command and arguments of the compiled `deploymentSpec` (placeholders filled in) in the
  image through the `ContainerRuntime`, as the job's service account;
- a **resolver** task answers each `outputArtifactQueries` filter from ML Metadata (newest
  matching artifact), with the spec's placeholders filled from the task's own inputs.

Task states, inputs, outputs and errors are published as `jobDetail.taskDetails`, the way the
SDK reads them (`PipelineJob.task_details`). A failed task fails the job: no further task starts,
and tasks that did not start are not listed.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from tools.standins.containers import ContainerRuntime, ContainerSpec, ImageNotFound, RunningContainer
from tools.standins.vertex_metadata import LIVE, CachedExecution, FilterError, MetadataStore

JsonDict = dict[str, Any]

SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
FAILED = "PIPELINE_STATE_FAILED"
RUNNING = "PIPELINE_STATE_RUNNING"
CANCELLED = "PIPELINE_STATE_CANCELLED"
FAILED_PRECONDITION = 9
INTERNAL = 13
CANCELLED_CODE = 1

_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")
_LEGACY_TYPES = {"STRING": "stringValue", "INT": "intValue", "DOUBLE": "doubleValue"}


class ObjectReader(Protocol):
    """Reads what pipeline containers wrote to Cloud Storage (None for a missing object)."""

    def __call__(self, uri: str) -> bytes | None: ...


@dataclass(frozen=True)
class RunSettings:
    """What the service takes from the PipelineJob request and the project."""

    job_name: str  # projects/<number>/locations/<region>/pipelineJobs/<id>
    job_id: str
    project_id: str
    project_number: str
    location: str
    pipeline_root: str
    service_account: str
    spec: JsonDict
    parameter_values: JsonDict = field(default_factory=dict)

    @property
    def pipeline_name(self) -> str:
        return self.spec.get("pipelineInfo", {}).get("name", self.job_id)


@dataclass
class TaskRecord:
    """One task's detail as the SDK sees it, plus where it ran (for reports)."""

    detail: JsonDict
    logs: list[str] = field(default_factory=list)
    ran_as: str | None = None
    image: str | None = None


class TaskFailure(Exception):
    """A task could not run or its container failed; the message is the task's error."""


class PipelineRun:
    """One execution of a PipelineJob; `run()` blocks until it ends (call it from a thread)."""

    def __init__(
        self,
        settings: RunSettings,
        runtime: ContainerRuntime,
        metadata: MetadataStore,
        read_object: ObjectReader,
        publish: Callable[[JsonDict], None],
        now: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metadata = metadata
        self.read_object = read_object
        self.publish = publish
        self.now = now
        self.tasks: dict[str, TaskRecord] = {}
        self._ids = itertools.count(int(hashlib.sha256(settings.job_name.encode()).hexdigest()[:12], 16) * 1000)
        self._outputs: dict[str, dict[str, list[JsonDict]]] = {}
        self._output_parameters: dict[str, JsonDict] = {}
        self._cancelled = threading.Event()
        self._running: list[RunningContainer] = []
        self._lock = threading.RLock()
        self._root = TaskRecord(self._task_detail(settings.pipeline_name, parent=None))

    # -- control -------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stops the running containers (without waiting); the run then ends as CANCELLED."""
        self._cancelled.set()
        with self._lock:
            for container in self._running:
                container.signal()

    def run(self) -> None:
        """Runs every task once its upstream tasks have succeeded, independent ones side by side
        (as Vertex AI does); after a failure or a cancel no task starts, the running ones end."""
        started = self.now()
        self._root.detail.update(state="RUNNING", startTime=started)
        self._publish(state=RUNNING, startTime=started)
        needs = task_dependencies(self.settings.spec)
        succeeded: set[str] = set()
        failed: list[str] = []
        futures: dict[str, Future[bool]] = {}
        with ThreadPoolExecutor(max_workers=max(1, len(needs)), thread_name_prefix="task") as pool:
            while True:
                for name, future in futures.items():
                    if future.done() and name not in succeeded and name not in failed:
                        if future.result():
                            succeeded.add(name)
                        else:
                            failed.append(name)
                started_now = False
                if not failed and not self._cancelled.is_set():
                    for name in sorted(needs):
                        if name not in futures and needs[name] <= succeeded:
                            futures[name] = pool.submit(self._execute, name)
                            started_now = True
                pending = [future for future in futures.values() if not future.done()]
                if not pending and not started_now:
                    break
                if pending:
                    wait(pending, return_when=FIRST_COMPLETED)
        self._finish(failed[0] if failed else None)

    def _execute(self, name: str) -> bool:
        """Runs one task and records its outcome; True when it succeeded (or came from the cache)."""
        record = TaskRecord(self._task_detail(name, parent=self._root.detail["taskId"]))
        with self._lock:
            self.tasks[name] = record
        self._set(record, "RUNNING", startTime=self.now())
        try:
            state = self._run_task(name, record)
        except TaskFailure as error:
            self._set(record, "FAILED", endTime=self.now(), error={"code": FAILED_PRECONDITION, "message": str(error)})
            return False
        except Exception as error:  # a bug of this stand-in: end the task, not the run's thread
            message = f"the Vertex AI stand-in failed: {type(error).__name__}: {error}"
            self._set(record, "FAILED", endTime=self.now(), error={"code": INTERNAL, "message": message})
            return False
        if self._cancelled.is_set():
            self._set(record, "CANCELLED", endTime=self.now())
            return False
        self._set(record, state, endTime=self.now())
        return True

    # -- tasks ---------------------------------------------------------------------------------

    def _run_task(self, name: str, record: TaskRecord) -> str:
        spec = self.settings.spec
        task = spec["root"]["dag"]["tasks"][name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        parameters = self._input_parameters(task, component)
        artifacts = self._input_artifacts(task, component)
        record.detail["inputs"] = {key: {"artifacts": list(values)} for key, values in artifacts.items() if values}
        if "resolver" in executor:
            outputs = self._resolve(executor["resolver"], artifacts, component)
            state = "SUCCEEDED"
        elif "container" in executor:
            outputs, state = self._run_container(
                name, record, task, component, executor["container"], parameters, artifacts
            )
        else:
            raise TaskFailure(f"task {name}: executor kind {sorted(executor)} is not supported by this stand-in")
        self._outputs[name] = outputs
        record.detail["outputs"] = {key: {"artifacts": list(values)} for key, values in outputs.items() if values}
        return state

    def _input_parameters(self, task: JsonDict, component: JsonDict) -> dict[str, Any]:
        values: dict[str, Any] = {}
        root_inputs = self.settings.spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
        for key, source in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in source:
                runtime = source["runtimeValue"]
                values[key] = runtime["constant"] if "constant" in runtime else _legacy_value(runtime["constantValue"])
            elif "componentInputParameter" in source:
                pipeline_key = source["componentInputParameter"]
                if pipeline_key in self.settings.parameter_values:
                    values[key] = self.settings.parameter_values[pipeline_key]
                else:
                    values[key] = root_inputs.get(pipeline_key, {}).get("defaultValue")
            elif "taskOutputParameter" in source:
                producer = source["taskOutputParameter"]
                values[key] = self._output_parameters[producer["producerTask"]][producer["outputParameterKey"]]
        return values

    def _input_artifacts(self, task: JsonDict, component: JsonDict) -> dict[str, list[JsonDict]]:
        artifacts: dict[str, list[JsonDict]] = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source.get("taskOutputArtifact")
            if producer is None:
                raise TaskFailure(f"input artifact {key}: only task outputs are supported by this stand-in")
            artifacts[key] = self._outputs[producer["producerTask"]].get(producer["outputArtifactKey"], [])
        return artifacts

    def _resolve(self, resolver: JsonDict, inputs: Mapping[str, list[JsonDict]], component: JsonDict) -> dict:
        outputs: dict[str, list[JsonDict]] = {}
        for key, query in resolver.get("outputArtifactQueries", {}).items():
            expression = _fill_metadata_placeholders(query["filter"], inputs)
            try:
                found = self.metadata.query(expression) if expression is not None else []
            except FilterError as error:
                raise TaskFailure(f"invalid artifact filter: {error}") from None
            outputs[key] = found[:1]
        return outputs

    def _run_container(
        self,
        name: str,
        record: TaskRecord,
        task: JsonDict,
        component: JsonDict,
        container: JsonDict,
        parameters: dict[str, Any],
        inputs: dict[str, list[JsonDict]],
    ) -> tuple[dict[str, list[JsonDict]], str]:
        task_root = (
            f"{self.settings.pipeline_root.rstrip('/')}/{self.settings.project_number}/"
            f"{self.settings.job_id}/{name}_{record.detail['taskId']}"
        )
        outputs = self._new_output_artifacts(name, component, task_root)
        executor_input = self._executor_input(
            component, parameters, inputs, outputs, f"{task_root}/executor_output.json"
        )
        record.image = container["image"]
        record.ran_as = self.settings.service_account

        pre_cache_check = container.get("lifecycle", {}).get("preCacheCheck")
        if pre_cache_check:
            check = {**container, "command": pre_cache_check["command"], "args": pre_cache_check.get("args", [])}
            # The check writes the span and input fingerprint to executor_output.json; they join the
            # cache key here, and the container itself reads them from that file.
            self._start_container(name, "pre-cache check", record, check, executor_input)
            parameters = {**parameters, **_values_of(self._executor_output(executor_input))}

        caching = task.get("cachingOptions", {}).get("enableCache", False)
        cache_key = _cache_key(component, container, parameters, inputs)
        hit = self.metadata.cached(self.settings.pipeline_name, cache_key) if caching else None
        if hit is not None:
            record.detail["execution"] = {"name": hit.execution, "state": "CACHED", "displayName": name}
            self._output_parameters[name] = hit.parameters
            return hit.outputs, "SKIPPED"

        self._start_container(name, "", record, container, executor_input)
        written = self._executor_output(executor_input)
        finished = {}
        for key, artifacts in outputs.items():
            updates = written.get("artifacts", {}).get(key, {}).get("artifacts", [])
            metadata = updates[0].get("metadata", {}) if updates else {}
            uri = updates[0].get("uri") if updates else None  # an executor may point its output elsewhere
            finished[key] = [
                self.metadata.update_artifact(a["name"], metadata=metadata, uri=uri, state=LIVE) for a in artifacts
            ]
        self._output_parameters[name] = _values_of(written)
        execution = self.metadata.new_name("executions")
        record.detail["execution"] = {"name": execution, "state": "COMPLETE", "displayName": name}
        if caching:
            self.metadata.remember(
                self.settings.pipeline_name,
                cache_key,
                CachedExecution(execution, name, self.settings.job_name, finished, self._output_parameters[name]),
            )
        return finished, "SUCCEEDED"

    def _new_output_artifacts(self, task: str, component: JsonDict, task_root: str) -> dict[str, list[JsonDict]]:
        outputs = {}
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            title = schema_title(definition["artifactType"])
            outputs[key] = [self.metadata.create_artifact(title, f"{task_root}/{key}", display_name=key)]
        return outputs

    def _executor_input(
        self,
        component: JsonDict,
        parameters: Mapping[str, Any],
        inputs: Mapping[str, list[JsonDict]],
        outputs: Mapping[str, list[JsonDict]],
        output_file: str,
    ) -> JsonDict:
        definitions = component.get("inputDefinitions", {})
        legacy, current = {}, {}
        for key, value in parameters.items():
            declared = definitions.get("parameters", {}).get(key, {})
            if "type" in declared:  # schema 2.0.0: pipeline_spec Value
                legacy[key] = {_LEGACY_TYPES[declared["type"]]: _legacy_scalar(declared["type"], value)}
            else:
                current[key] = value
        input_types = {k: d.get("artifactType", {}) for k, d in definitions.get("artifacts", {}).items()}
        outputs_defined = component.get("outputDefinitions", {}).get("artifacts", {})
        output_types = {k: d.get("artifactType", {}) for k, d in outputs_defined.items()}
        executor_input: JsonDict = {
            "inputs": {
                "artifacts": {
                    key: {"artifacts": [_runtime_artifact(a, input_types.get(key, {})) for a in artifacts]}
                    for key, artifacts in inputs.items()
                    if artifacts
                },
            },
            "outputs": {
                "artifacts": {
                    key: {"artifacts": [_runtime_artifact(a, output_types[key]) for a in artifacts]}
                    for key, artifacts in outputs.items()
                },
                "outputFile": output_file,
            },
        }
        if legacy:
            executor_input["inputs"]["parameters"] = legacy
        if current:
            executor_input["inputs"]["parameterValues"] = current
        return executor_input

    def _start_container(
        self, name: str, step: str, record: TaskRecord, container: JsonDict, executor_input: JsonDict
    ) -> None:
        filled = json.dumps(executor_input)
        spec = ContainerSpec(
            image=container["image"],
            command=[_fill(part, filled) for part in container.get("command", [])],
            args=[_fill(part, filled) for part in container.get("args", [])],
            env={item["name"]: item["value"] for item in container.get("env", [])},
        )
        label = f"{name} {step}".strip()
        try:
            running = self.runtime.start(spec, name=label, service_account=self.settings.service_account)
        except ImageNotFound as error:
            raise TaskFailure(str(error)) from None
        with self._lock:
            self._running.append(running)
        try:
            status = running.wait()
        finally:
            with self._lock:
                self._running.remove(running)
        record.logs.append(str(running.log_path))
        if self._cancelled.is_set():
            return
        if status != 0:
            where = f" ({step})" if step else ""
            raise TaskFailure(
                f"The replica workerpool0-0 exited with a non-zero status of {status}{where}. Termination reason: "
                f"Error. To find out more about why your job exited please check the logs: {running.log_path}"
            )

    def _executor_output(self, executor_input: JsonDict) -> JsonDict:
        raw = self.read_object(executor_input["outputs"]["outputFile"])
        if raw is None:
            return {}
        try:
            return json.loads(raw)
        except ValueError as error:
            raise TaskFailure(f"executor_output.json is not JSON: {error}") from None

    # -- publishing ----------------------------------------------------------------------------

    def _task_detail(self, name: str, parent: str | None) -> JsonDict:
        detail: JsonDict = {
            "taskId": str(next(self._ids)),
            "taskName": name,
            "createTime": self.now(),
            "state": "PENDING",
        }
        if parent is not None:
            detail["parentTaskId"] = parent
        return detail

    def _set(self, record: TaskRecord, state: str, **fields: Any) -> None:
        record.detail.update(state=state, **fields)
        self._publish()

    def _finish(self, failed: str | None) -> None:
        ended = self.now()
        if self._cancelled.is_set():
            self._root.detail.update(state="CANCELLED", endTime=ended)
            error = {"code": CANCELLED_CODE, "message": "The pipeline job was cancelled."}
            self._publish(state=CANCELLED, endTime=ended, error=error)
        elif failed is not None:
            self._root.detail.update(state="FAILED", endTime=ended)
            error = {
                "code": FAILED_PRECONDITION,
                "message": f"The DAG failed because some tasks failed. The failed tasks are: [{failed}].; "
                f"Job (project_id = {self.settings.project_id}, job_id = {self.settings.job_id}) is failed due "
                "to the above error.",
            }
            self._publish(state=FAILED, endTime=ended, error=error)
        else:
            self._root.detail.update(state="SUCCEEDED", endTime=ended)
            self._publish(state=SUCCEEDED, endTime=ended)

    def _publish(self, **fields: Any) -> None:
        contexts = f"{self.metadata.prefix}/contexts/"
        # Snapshot and publish under one lock: task threads publish in the order they snapshot.
        with self._lock:
            details = [copy.deepcopy(self._root.detail)] + [copy.deepcopy(t.detail) for t in self.tasks.values()]
            fields["jobDetail"] = {
                "pipelineContext": {
                    "name": contexts + self.settings.pipeline_name,
                    "displayName": self.settings.pipeline_name,
                },
                "pipelineRunContext": {"name": contexts + self.settings.job_id, "displayName": self.settings.job_id},
                "taskDetails": details,
            }
            fields["updateTime"] = self.now()
            self.publish(fields)


def task_dependencies(spec: JsonDict) -> dict[str, set[str]]:
    """Each root DAG task and the tasks it must wait for: those it names and those whose outputs it reads."""
    tasks = spec.get("root", {}).get("dag", {}).get("tasks", {})
    needs: dict[str, set[str]] = {}
    for name, task in tasks.items():
        upstream = set(task.get("dependentTasks", []))
        for kind in ("artifacts", "parameters"):
            for source in task.get("inputs", {}).get(kind, {}).values():
                producer = source.get("taskOutputArtifact") or source.get("taskOutputParameter")
                if producer:
                    upstream.add(producer["producerTask"])
        needs[name] = upstream & set(tasks)
    return needs


def task_order(spec: JsonDict) -> list[str]:
    """Root DAG tasks so that every task comes after the tasks it waits for (ties by name)."""
    needs = {name: set(upstream) for name, upstream in task_dependencies(spec).items()}
    order: list[str] = []
    while needs:
        ready = sorted(name for name, upstream in needs.items() if not upstream)
        if not ready:
            raise ValueError(f"the DAG has a cycle among {sorted(needs)}")
        for name in ready:
            needs.pop(name)
            order.append(name)
        for upstream in needs.values():
            upstream.difference_update(ready)
    return order


def schema_title(artifact_type: JsonDict) -> str:
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    match = re.search(r"^title:\s*(\S+)", artifact_type.get("instanceSchema", ""), re.MULTILINE)
    return match.group(1) if match else "system.Artifact"


def _runtime_artifact(artifact: JsonDict, artifact_type: JsonDict) -> JsonDict:
    return {
        "name": artifact["name"],
        "type": copy.deepcopy(artifact_type) or {"schemaTitle": artifact["schemaTitle"]},
        "uri": artifact["uri"],
        "metadata": copy.deepcopy(artifact.get("metadata", {})),
    }


def _legacy_value(value: JsonDict) -> Any:
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    return value.get("stringValue", "")


def _legacy_scalar(kind: str, value: Any) -> Any:
    if kind == "INT":
        return str(int(value))
    if kind == "DOUBLE":
        return float(value)
    return value if isinstance(value, str) else json.dumps(value)


def _values_of(executor_output: JsonDict) -> dict[str, Any]:
    """Parameter values an ExecutorOutput carries, in either of its two forms."""
    values = dict(executor_output.get("parameterValues", {}))
    values.update({key: _legacy_value(value) for key, value in executor_output.get("parameters", {}).items()})
    return values


def _fill(part: str, executor_input: str) -> str:
    return part.replace("{{$}}", executor_input)


def _fill_metadata_placeholders(expression: str, inputs: Mapping[str, list[JsonDict]]) -> str | None:
    """The filter with `{{$.inputs.artifacts['k'].metadata['m']}}` filled in; None if an input is empty."""
    unresolved = False

    def value(match: re.Match[str]) -> str:
        nonlocal unresolved
        artifacts = inputs.get(match.group(1)) or []
        found = artifacts[0].get("metadata", {}).get(match.group(2)) if artifacts else None
        if found is None:
            unresolved = True
            return ""
        return str(found)

    filled = _PLACEHOLDER.sub(value, expression)
    return None if unresolved else filled


def _cache_key(component: JsonDict, container: JsonDict, parameters: Mapping[str, Any], inputs: Mapping) -> str:
    """What Vertex AI's cache key covers: the component's interface, the container and its command,
    the input parameter values and the input artifacts (by name)."""
    key = {
        "inputDefinitions": component.get("inputDefinitions", {}),
        "outputDefinitions": component.get("outputDefinitions", {}),
        "container": {k: container.get(k) for k in ("image", "command", "args")},
        "parameters": parameters,
        "artifacts": {k: [a["name"] for a in v] for k, v in inputs.items()},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


class LocalPipelineExecutor:
    """The `JobExecutor` of the pipelines surface: each created job runs in its own thread."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        read_object: ObjectReader,
        project_id: str,
        project_number: str,
        now: Callable[[], str] | None = None,
    ) -> None:
        self.runtime = runtime
        self.read_object = read_object
        self.project_id = project_id
        self.project_number = project_number
        self.now = now or rfc3339_now
        self.runs: dict[str, PipelineRun] = {}
        self._stores: dict[str, MetadataStore] = {}
        self._threads: list[threading.Thread] = []

    def metadata(self, parent: str) -> MetadataStore:
        """ML Metadata of one project and region (`projects/<number>/locations/<region>`)."""
        if parent not in self._stores:
            self._stores[parent] = MetadataStore(parent, self.now)
        return self._stores[parent]

    def start(self, job: JsonDict, parent: str, publish: Callable[[JsonDict], None]) -> PipelineRun:
        spec = job.get("pipelineSpec") or {}
        settings = RunSettings(
            job_name=job["name"],
            job_id=job["name"].rsplit("/", 1)[1],
            project_id=self.project_id,
            project_number=self.project_number,
            location=parent.rsplit("/", 1)[1],
            pipeline_root=job.get("runtimeConfig", {}).get("gcsOutputDirectory") or spec["defaultPipelineRoot"],
            service_account=job.get("serviceAccount") or f"{self.project_number}-compute@developer.gserviceaccount.com",
            spec=spec,
            parameter_values=job.get("runtimeConfig", {}).get("parameterValues", {}),
        )
        run = PipelineRun(settings, self.runtime, self.metadata(parent), self.read_object, publish, self.now)
        self.runs[settings.job_id] = run
        thread = threading.Thread(target=run.run, name=f"pipeline-run-{settings.job_id}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return run

    def wait(self, timeout: float | None = None) -> None:
        """Blocks until every started run has ended."""
        for thread in list(self._threads):
            thread.join(timeout)


def rfc3339_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
