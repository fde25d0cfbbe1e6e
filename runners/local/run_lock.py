"""One local run per output folder.

Two runs on the same output folder would both train and push, and each would report the other's
metrics. A run therefore holds `<output folder>/run.lock` while it works: an exclusive `flock`
on the file, which names the holder (pid, start time, command). The kernel drops the flock when
the process ends however it ends, kill -9 included, so a lock is never left held by a dead run.

The holder's details stay in the file when a run is killed before it can empty it. The next run
finds them, checks that the process is gone (no such pid, or a pid now used by a process that
started at another time), and takes over: the caller then cleans up after the killed run. A
process recorded in the file that is still running refuses the lock even when flock is granted
(a filesystem whose flock is a no-op).

The file is emptied, never deleted, on release: deleting it would let a waiting run lock the
deleted file while a third run locks a new one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

LOCK_NAME = "run.lock"


@dataclass(frozen=True)
class LockHolder:
    """The process that holds (or held) the lock."""

    pid: int
    started: str
    command: str
    # Field 22 of /proc/<pid>/stat: tells the holder apart from a later process given the same pid.
    start_ticks: int | None = None

    def describe(self) -> str:
        return f"pid {self.pid}, started {self.started}: {self.command}"

    def is_running(self) -> bool:
        if self.start_ticks is not None and Path("/proc/self/stat").exists():
            return process_start_ticks(self.pid) == self.start_ticks
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class OutputFolderBusy(Exception):
    """Another run holds the output folder; the message is one line meant for the user."""

    def __init__(self, output_dir: Path, holder: LockHolder | None) -> None:
        self.holder = holder
        who = f" ({holder.describe()})" if holder else ""
        super().__init__(
            f"another run is using the output folder {output_dir}{who}; wait for it to end, run again with "
            "--wait-for-lock (WAIT=1 with make) to wait, or give another folder with --output-dir"
        )


def process_start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks after boot; None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name (field 2) is in parentheses and may hold spaces; the start time is field 22.
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def this_process() -> LockHolder:
    return LockHolder(
        pid=os.getpid(),
        started=time.strftime("%Y-%m-%d %H:%M:%S"),
        command=shlex.join(sys.orig_argv),
        start_ticks=process_start_ticks(os.getpid()),
    )


class RunLock:
    """The lock of one output folder. `acquire` returns the details a killed run left behind, if any."""

    def __init__(self, output_dir: Path | str) -> None:
        self.output_dir = Path(os.path.abspath(Path(output_dir).expanduser()))
        self.path = self.output_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(
        self, wait: bool = False, on_wait: Callable[[LockHolder | None], None] | None = None
    ) -> LockHolder | None:
        """Takes the lock, or raises OutputFolderBusy (with `wait`: blocks until the holder ends)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not _try_flock(fd):
                if not wait:
                    raise OutputFolderBusy(self.output_dir, _read(fd))
                if on_wait:
                    on_wait(_read(fd))
                fcntl.flock(fd, fcntl.LOCK_EX)
            left = _read(fd)
            if left is not None and left.pid != os.getpid() and left.is_running():
                raise OutputFolderBusy(self.output_dir, left)  # flock granted, yet the holder runs
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(this_process())).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return left

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return False
        # No flock on this filesystem (ENOLCK, EOPNOTSUPP): the recorded holder is checked instead.
    return True


def _read(fd: int) -> LockHolder | None:
    """The holder recorded in the lock file; None when it is empty (released) or unreadable."""
    content = os.pread(fd, 65536, 0)
    if not content.strip():
        return None
    try:
        return LockHolder(**json.loads(content))
    except (ValueError, TypeError):
        return None
