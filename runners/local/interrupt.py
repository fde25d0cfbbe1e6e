"""Stopping a local run cleanly on Ctrl-C (SIGINT) or SIGTERM, so the same command can resume it.

TFX's launcher marks an execution FAILED only for an `Exception`; an interrupt (a BaseException)
leaves it RUNNING in ML Metadata, and Beam may also wrap the interrupt into a RuntimeError. So
the signal itself is recorded here and, after the run stopped, the execution of the interrupted
component is marked CANCELED and its partial output folders are removed. Its outputs were never
published (TFX publishes them only when the executor returns), so nothing downstream or in the
cache can use them: the next run reuses the finished components and runs this one afresh.

A run killed outright (kill -9, a crash, a closed laptop) cannot do this bookkeeping itself: its
executions stay RUNNING and its partial outputs stay on disk. The next run on the same output
folder, holding the folder's run lock (runners/local/run_lock.py) and so sure that no other run is
working, settles them the same way before it starts (`settle_abandoned_executions`). CANCELED is
the state MLMD offers for an execution that will never finish; TFX's cache reuses only COMPLETE
and CACHED executions, and the local runner never resumes one, so nothing reads them again.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import TextIO

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import pipeline as tfx_pipeline
from pipeline.config import PipelineConfig

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PIPELINE_RUN_CONTEXT = "pipeline_run"
NODE_CONTEXT = "node"
_UNFINISHED = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)


class RunInterrupted(BaseException):
    """Raised in the main thread after SIGINT or SIGTERM (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """While active, SIGINT or SIGTERM raises RunInterrupted; `received` keeps which came first.

    Python runs a signal handler between two bytecodes of the main thread, wherever they are: an
    exception raised while a finalizer (`__del__`, of which TensorFlow has many) runs is printed
    and dropped, and the run would go on. So after the first signal the interrupt is raised again
    every RESEND_SECONDS (SIGALRM) until the run has stopped and this context is left, and the
    dropped one is not printed.
    """

    RESEND_SECONDS = 1.0

    def __init__(self) -> None:
        self.received: int | None = None
        self.started_ms = 0
        self._previous: dict[int, signal.Handlers | object] = {}
        self._unraisable_hook = sys.unraisablehook

    def __enter__(self) -> StopSignals:
        self.started_ms = int(time.time() * 1000)
        self._unraisable_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        self._previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._raise_again)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        # A SIGALRM already delivered but not yet handled is skipped once its handler is the default.
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous = {}
        sys.unraisablehook = self._unraisable_hook

    def _unraisable(self, unraisable: sys.UnraisableHookArgs) -> None:
        if not isinstance(unraisable.exc_value, RunInterrupted):  # raised again soon: not worth a traceback
            self._unraisable_hook(unraisable)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            signal.setitimer(signal.ITIMER_REAL, self.RESEND_SECONDS, self.RESEND_SECONDS)
        raise RunInterrupted(self.received)

    def _raise_again(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise RunInterrupted(self.received)


def exit_status(signum: int) -> int:
    """128 + the signal number, as shells report a process a signal stopped: 130 (INT), 143 (TERM)."""
    return 128 + signum


@dataclass(frozen=True)
class InterruptedExecution:
    component_id: str
    execution_id: int
    state: str
    removed_outputs: tuple[str, ...]


def settle_interrupted_run(config: PipelineConfig, since_ms: int = 0) -> list[InterruptedExecution]:
    """Marks the unfinished executions of the latest run CANCELED and removes their partial outputs.

    Only a run recorded at or after `since_ms` (ms since the epoch) is touched: a run stopped before
    its first component leaves the previous run as the latest one.
    """
    if not tfx_pipeline.metadata_path(config).is_file():
        return []  # stopped before the first component: nothing recorded
    store = tfx_pipeline.metadata_store(config, writable=True)
    run = _latest_run(store)
    if run is None or run.create_time_since_epoch < since_ms:
        return []
    settled = []
    for execution in store.get_executions_by_context(run.id):
        component_id = _component_of(store, execution.id, config.pipeline_name)
        if execution.last_known_state in _UNFINISHED:
            execution.last_known_state = metadata_store_pb2.Execution.CANCELED
            store.put_executions([execution])
        elif execution.last_known_state != metadata_store_pb2.Execution.FAILED:
            continue
        removed = _remove_partial_outputs(config, component_id, execution)
        state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        settled.append(InterruptedExecution(component_id, execution.id, state, removed))
    return settled


def settle_abandoned_executions(config: PipelineConfig) -> list[InterruptedExecution]:
    """Marks every execution left NEW or RUNNING by a run that is no longer running CANCELED, and
    removes its partial outputs. Call only while holding the output folder's run lock."""
    if not tfx_pipeline.metadata_path(config).is_file():
        return []
    store = tfx_pipeline.metadata_store(config, writable=True)
    abandoned = [execution for execution in store.get_executions() if execution.last_known_state in _UNFINISHED]
    settled = []
    for execution in abandoned:
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
        store.put_executions([execution])
        component_id = _component_of(store, execution.id, config.pipeline_name)
        removed = _remove_partial_outputs(config, component_id, execution)
        settled.append(InterruptedExecution(component_id, execution.id, "CANCELED", removed))
    return settled


def report_interrupt(config: PipelineConfig, signum: int, since_ms: int = 0, stream: TextIO = sys.stderr) -> int:
    """Settles ML Metadata (runs since `since_ms`), prints what happened and how to resume; returns the exit status."""
    name = signal.Signals(signum).name
    try:
        settled = settle_interrupted_run(config, since_ms)
    except Exception as error:  # the message below matters more than the bookkeeping
        settled = []
        stream.write(f"warning: could not mark the interrupted step in ML Metadata: {error}\n")
    steps = ", ".join(f"{item.component_id} (execution {item.execution_id}, now {item.state})" for item in settled)
    where = f" while {steps} was running" if steps else ""
    stream.write(
        f"error: interrupted by {name}{where}; nothing of the interrupted step was kept.\n"
        "Run the same command again to resume: the finished steps come from the cache.\n"
    )
    stream.flush()
    return exit_status(signum)


def _latest_run(store: metadata_store.MetadataStore) -> metadata_store_pb2.Context | None:
    runs = store.get_contexts_by_type(PIPELINE_RUN_CONTEXT)
    return max(runs, key=lambda context: context.id, default=None)


def _component_of(store: metadata_store.MetadataStore, execution_id: int, pipeline_name: str) -> str:
    for context in store.get_contexts_by_execution(execution_id):
        if context.name.startswith(f"{pipeline_name}.") and _is_node(store, context):
            return context.name.removeprefix(f"{pipeline_name}.")
    return "unknown"


def _is_node(store: metadata_store.MetadataStore, context: metadata_store_pb2.Context) -> bool:
    return store.get_context_types_by_id([context.type_id])[0].name == NODE_CONTEXT


def _remove_partial_outputs(
    config: PipelineConfig, component_id: str, execution: metadata_store_pb2.Execution
) -> tuple[str, ...]:
    """What the unfinished execution had written in <pipeline root>/<component>/: its output folders
    <output key>/<execution id>, its temporary folder .system/executor_execution/<execution id>, and
    its working folder .system/stateful_working_dir/<uuid> (created with it; TFX removes it only
    after a success, and the uuid is not recorded)."""
    component_root = tfx_pipeline.local_pipeline_root(config) / component_id
    system = component_root / ".system"
    candidates = [*component_root.glob(f"*/{execution.id}"), system / "executor_execution" / str(execution.id)]
    started = execution.create_time_since_epoch / 1000
    working = system / "stateful_working_dir"
    if working.is_dir():
        candidates += [folder for folder in working.iterdir() if folder.stat().st_mtime >= started - 1]
    removed = []
    for folder in sorted(candidates):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return tuple(removed)
