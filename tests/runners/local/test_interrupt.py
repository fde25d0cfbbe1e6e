"""Ctrl-C during a component stops the run cleanly; the same command then resumes from the cache.

The run is a real `python -m pipeline run-local` child process, interrupted with SIGINT once its
progress output shows Transform running. ML Metadata must then hold the interrupted execution as
CANCELED (not COMPLETE) with no output artifact, and the re-run must reuse every component that
had finished (CACHED) and run Transform afresh.

A run killed outright (SIGKILL) cannot clean up: while it ran, a second run on the same output
folder was refused; the next run after it takes over its lock, marks its execution CANCELED and
removes its partial outputs. Both children print only the pipeline's own lines (no TensorFlow,
XLA or Beam logs) without --verbose.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import pipeline as tfx_pipeline
from pipeline.config import load_config
from pipeline.paths import REPO_ROOT
from runners import errors
from runners.local.interrupt import RunInterrupted, StopSignals, exit_status
from tests.conftest import SMALL_SAMPLE_ROWS, write_data_sample
from tests.runners import columns
from tests.runners.conftest import GOOD_RUN_CONFIG, LocalRun, run_cli, tree_hash

INTERRUPTED = tfx_pipeline.TRANSFORM
FINISHED_BEFORE = (
    tfx_pipeline.EXAMPLE_GEN,
    tfx_pipeline.STATISTICS_GEN,
    tfx_pipeline.SCHEMA_GEN,
    tfx_pipeline.EXAMPLE_VALIDATOR,
    tfx_pipeline.VALIDATION_GATE,
)
STARTUP_TIMEOUT_S = 240
# What a run prints without --verbose, line by line (runners/cli.py, runners/local/progress.py).
OUR_LINE = re.compile(r"Running pipeline '.*|  \w+ +(running \.\.\.|done in .* s|from cache in .* s|FAILED after .* s)")
PIPELINE_NAME = load_config().pipeline_name


class ChildOutput:
    """Collects a child process's stdout lines in a thread, so the test can wait for one."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                return False
            if line is None:
                return False
            self.lines.append(line)
            if text in line:
                return True
        return False

    def rest(self) -> str:
        self._thread.join(timeout=30)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)


def start_run(args: list[str], stderr_file: Path) -> tuple[subprocess.Popen, ChildOutput]:
    """`python -m pipeline` in a child process, with the Makefile's TensorFlow settings."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with stderr_file.open("w") as stderr_sink:  # a file: a full stderr pipe would block the child
        child = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr_sink,
            text=True,
        )
    return child, ChildOutput(child)


def executions_started(step_folder: Path) -> set[str]:
    """The ids of the step's executions that made their executor's folder."""
    return {path.name for path in (step_folder / ".system" / "executor_execution").glob("*")}


def wait_for_partial_outputs(step_folder: Path, earlier: set[str], timeout: float) -> list[Path]:
    """The folders a new execution of the step (not one of `earlier`) made, each named by its id: its
    outputs' (made first) and its executor's; [] if none came within `timeout`. "running" is logged
    just before the step makes them."""
    deadline = time.monotonic() + timeout
    while not (new := executions_started(step_folder) - earlier) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not new:
        return []
    (execution,) = new
    outputs = [path for path in step_folder.glob(f"*/{execution}") if path.parent.name != ".system"]
    return [*outputs, step_folder / ".system" / "executor_execution" / execution]


def assert_only_our_lines(stdout: str) -> None:
    """No line of TensorFlow's C++ logs (XLA's "Unable to register cuFFT factory"), Beam or absl."""
    others = [line for line in stdout.splitlines() if not OUR_LINE.fullmatch(line)]
    assert others == [], others


def store_of(output: Path) -> metadata_store.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(output / "metadata" / PIPELINE_NAME / "metadata.sqlite")
    return metadata_store.MetadataStore(connection)


def executions_of(store: metadata_store.MetadataStore, component: str) -> list[metadata_store_pb2.Execution]:
    context = store.get_context_by_type_and_name("node", f"{PIPELINE_NAME}.{component}")
    return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id) if context else []


def output_artifact_ids(store: metadata_store.MetadataStore, execution_id: int) -> list[int]:
    kinds = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
    return [e.artifact_id for e in store.get_events_by_execution_ids([execution_id]) if e.type in kinds]


def test_a_stop_signal_raises_and_exits_like_a_shell() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    stop = StopSignals()
    with pytest.raises(RunInterrupted), stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at the next bytecode
    assert stop.received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == previous
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert (exit_status(signal.SIGINT), exit_status(signal.SIGTERM)) == (130, 143)


class Finalizer:
    """Receives the signal inside __del__, where Python drops whatever the handler raises."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)


def test_an_interrupt_dropped_by_a_finalizer_is_raised_again_without_noise() -> None:
    stop = StopSignals()
    unraisable: list = []
    previous = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests were started in the background
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "unraisablehook", unraisable.append)
        with pytest.raises(RunInterrupted), stop:
            finalizer = Finalizer()
            del finalizer
            time.sleep(5)  # the run goes on here, until the interrupt is raised again
        assert sys.unraisablehook == unraisable.append
    assert time.monotonic() - started < 5
    assert unraisable == []  # the dropped interrupt printed no traceback
    assert stop.received == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) == previous


def test_interrupted_run_is_cancelled_cleanly_and_resumes_from_the_cache(tmp_path: Path, small_data_dir: Path) -> None:
    config = tmp_path / "test.yaml"
    config.write_text(GOOD_RUN_CONFIG)
    output = tmp_path / "out"
    args = ["run-local", "--config", str(config), "--data", str(small_data_dir), "--output-dir", str(output)]
    stderr_file = tmp_path / "stderr.txt"
    child, output_lines = start_run(args, stderr_file)
    try:
        started = output_lines.wait_for(f"{INTERRUPTED:<32} running", STARTUP_TIMEOUT_S)
        assert started, f"{INTERRUPTED} never started:\n{''.join(output_lines.lines)}"
        time.sleep(2)  # well inside Transform's Beam work
        child.send_signal(signal.SIGINT)
        status = child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    stdout, stderr = output_lines.rest(), stderr_file.read_text()

    assert status == 130, stderr
    message, resume = stderr.splitlines()  # nothing but ours: no TensorFlow, XLA or Beam lines
    assert message.startswith(f"error: interrupted by SIGINT while {INTERRUPTED} (execution ")
    assert message.endswith("now CANCELED) was running; nothing of the interrupted step was kept.")
    assert resume == "Run the same command again to resume: the finished steps come from the cache."
    assert f"{INTERRUPTED:<32} done" not in stdout
    assert_only_our_lines(stdout)

    store = store_of(output)
    (cancelled,) = executions_of(store, INTERRUPTED)
    assert cancelled.last_known_state == metadata_store_pb2.Execution.CANCELED
    assert output_artifact_ids(store, cancelled.id) == []
    assert not list((output / "pipelines" / PIPELINE_NAME / INTERRUPTED).glob(f"*/{cancelled.id}"))
    for component in FINISHED_BEFORE:
        (finished,) = executions_of(store, component)
        assert finished.last_known_state == metadata_store_pb2.Execution.COMPLETE, component
    assert not executions_of(store, tfx_pipeline.TRAINER)

    summary_file = tmp_path / "summary.json"
    status, _, resumed_stderr = run_cli([*args, "--summary-json", str(summary_file)])
    assert status == errors.EXIT_OK, resumed_stderr
    resumed = json.loads(summary_file.read_text())["executions"]
    assert {component: resumed[component] for component in FINISHED_BEFORE} == dict.fromkeys(FINISHED_BEFORE, "CACHED")
    assert resumed[INTERRUPTED] == "COMPLETE"

    store = store_of(output)
    first, again = executions_of(store, INTERRUPTED)
    assert first.id == cancelled.id and first.last_known_state == metadata_store_pb2.Execution.CANCELED
    assert again.last_known_state == metadata_store_pb2.Execution.COMPLETE
    assert output_artifact_ids(store, again.id)
    for component in FINISHED_BEFORE:
        states = [e.last_known_state for e in executions_of(store, component)]
        assert states == [metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED], component
    (trained,) = executions_of(store, tfx_pipeline.TRAINER)
    assert trained.last_known_state == metadata_store_pb2.Execution.COMPLETE


def test_a_second_run_is_refused_and_a_killed_run_is_cleaned_up_after(good_run: LocalRun, tmp_path: Path) -> None:
    category = columns.text_category()  # the one whose values outside the list stop the last run at the gate
    output = tmp_path / "out"
    shutil.copytree(good_run.output, output)  # holds a pushed model
    serving = output / "serving_model" / PIPELINE_NAME
    serving_before = tree_hash(serving)
    data = write_data_sample(tmp_path / "data", SMALL_SAMPLE_ROWS - 100)  # new data: the steps run again
    args = good_run.args(data=str(data), output=str(output))
    step_folder = output / "pipelines" / PIPELINE_NAME / INTERRUPTED
    earlier = executions_started(step_folder)  # the good run's
    stderr_file = tmp_path / "stderr.txt"
    child, output_lines = start_run(args, stderr_file)
    try:
        started = output_lines.wait_for(f"{INTERRUPTED:<32} running", STARTUP_TIMEOUT_S)
        assert started, f"{INTERRUPTED} never started:\n{''.join(output_lines.lines)}"

        # Stopped once the step has made its folders, so that there is something to clean up after it;
        # stopped, not yet killed, so that the step cannot end meanwhile on a busy machine.
        partial = wait_for_partial_outputs(step_folder, earlier, STARTUP_TIMEOUT_S)
        assert partial, f"{INTERRUPTED} made no output folder"
        child.send_signal(signal.SIGSTOP)

        # A second run on the same output folder refuses at once, naming the running one.
        status, stdout, stderr = run_cli(args)
        assert status == errors.EXIT_BAD_INPUT
        assert re.fullmatch(
            rf"error: another run is using the output folder {re.escape(str(output))} \(pid {child.pid}, started "
            rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d: \S*python\S* -m pipeline run-local --config .*\); wait for it to end, "
            r"run again with --wait-for-lock \(WAIT=1 with make\) to wait, or give another folder with --output-dir\n",
            stderr,
        ), stderr
        assert "Running pipeline" not in stdout
        assert tree_hash(serving) == serving_before

        child.send_signal(signal.SIGKILL)  # no chance to clean up
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    assert_only_our_lines(output_lines.rest())
    assert stderr_file.read_text() == ""  # TensorFlow's and Beam's logs stay out of a quiet run

    store = store_of(output)
    killed = executions_of(store, INTERRUPTED)[-1]
    assert killed.last_known_state == metadata_store_pb2.Execution.RUNNING  # as kill -9 left it
    assert {folder.name for folder in partial} == {str(killed.id)}
    assert all(folder.is_dir() for folder in partial)

    # The next run takes over the lock, settles the killed run; this data (a text category with more
    # values outside the schema's list than it tolerates) then stops at the gate.
    every, unlisted = category.breaking_every, columns.UNLISTED_VALUE
    table = columns.with_column(columns.read_table(data), category.name, lambda i, v: unlisted if i % every == 0 else v)
    columns.write_table(data, *table)
    status, stdout, stderr = run_cli(args)
    assert status == errors.EXIT_BAD_INPUT, stderr
    assert f"The last run on this output folder was killed (pid {child.pid}, started " in stdout
    assert (
        f"  {INTERRUPTED} (execution {killed.id}) of a killed run: marked CANCELED, its partial outputs removed"
        in stdout.splitlines()
    )
    assert "error: the data does not match the schema" in stderr
    store = store_of(output)
    (settled,) = [e for e in executions_of(store, INTERRUPTED) if e.id == killed.id]
    assert settled.last_known_state == metadata_store_pb2.Execution.CANCELED
    assert output_artifact_ids(store, killed.id) == []
    assert not any(folder.exists() for folder in partial)
    running = metadata_store_pb2.Execution.RUNNING
    assert not [e for e in store.get_executions() if e.last_known_state == running]
    assert tree_hash(serving) == serving_before
    assert (output / "run.lock").read_text() == ""  # released
