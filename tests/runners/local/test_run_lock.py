"""One run per output folder: the lock refuses a second run, waits when asked, and outlives no run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.paths import REPO_ROOT
from runners.local.run_lock import LOCK_NAME, LockHolder, OutputFolderBusy, RunLock, process_start_ticks

# A process that takes the lock the way a run does, says so, then holds it for argv[2] seconds.
HOLD_LOCK = (
    "import sys, time; from runners.local.run_lock import RunLock; lock = RunLock(sys.argv[1]); lock.acquire(); "
    "print('locked', flush=True); time.sleep(float(sys.argv[2])); lock.release()"
)


def hold_lock(output: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(output), str(seconds)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture
def holder_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    output = tmp_path / "out"
    process = hold_lock(output, 60)
    yield process, output
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_second_run_is_refused_with_the_running_one_named(holder_process) -> None:
    process, output = holder_process
    with pytest.raises(OutputFolderBusy) as refused:
        RunLock(output).acquire()
    holder = refused.value.holder
    assert holder.pid == process.pid and holder.is_running()
    assert HOLD_LOCK[:20] in holder.command
    message = str(refused.value)
    assert message.startswith(f"another run is using the output folder {output} (pid {process.pid}, started 20")
    assert "--wait-for-lock" in message and "\n" not in message


def test_a_waiting_run_starts_when_the_other_ends(tmp_path: Path) -> None:
    output = tmp_path / "out"
    process = hold_lock(output, 2)
    waited_for: list[LockHolder | None] = []
    started = time.monotonic()
    lock = RunLock(output)
    assert lock.acquire(wait=True, on_wait=waited_for.append) is None  # released cleanly: nothing to clean up
    assert time.monotonic() - started > 1
    assert [holder.pid for holder in waited_for] == [process.pid]
    assert process.wait(timeout=10) == 0
    lock.release()
    assert (output / LOCK_NAME).read_text() == ""  # released: emptied, not deleted


def test_the_lock_of_a_killed_run_is_detected_and_taken_over(holder_process) -> None:
    process, output = holder_process
    process.send_signal(signal.SIGKILL)
    process.wait()
    lock = RunLock(output)
    left = lock.acquire()
    assert left is not None and left.pid == process.pid and not left.is_running()
    assert str(os.getpid()) in (output / LOCK_NAME).read_text()
    lock.release()


def test_a_reused_pid_is_not_taken_for_the_holder() -> None:
    me = LockHolder(pid=os.getpid(), started="", command="", start_ticks=process_start_ticks(os.getpid()))
    assert me.is_running()
    assert not LockHolder(pid=os.getpid(), started="", command="", start_ticks=me.start_ticks - 1).is_running()
