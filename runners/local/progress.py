"""Shows which component runs and for how long, from the messages TFX's local runner logs."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

# Format strings of tfx.orchestration.local.local_dag_runner and portable.launcher (TFX 1.16).
_STARTED = "Component %s is running."
_FINISHED = "Component %s is finished."
_CACHED = "A cached execution %d is used."


@dataclass(frozen=True)
class ComponentTiming:
    component_id: str
    seconds: float
    cached: bool


class ProgressReporter(logging.Handler):
    """A handler for the `absl` logger that prints one line per component and keeps timings."""

    def __init__(self, stream: TextIO = sys.stdout, on_finished: Callable[[], None] | None = None) -> None:
        super().__init__(level=logging.INFO)
        self.stream = stream
        self.on_finished = on_finished
        self.timings: list[ComponentTiming] = []
        self.running: str | None = None
        self._started_at = 0.0
        self._cached = False

    @property
    def running_seconds(self) -> float:
        """How long the running component has been running."""
        return time.monotonic() - self._started_at

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == _STARTED:
            self.running, self._started_at, self._cached = str(record.args[0]), time.monotonic(), False
            self._print(f"  {self.running:<32} running ...")
        elif record.msg == _CACHED:
            self._cached = True
        elif record.msg == _FINISHED and self.running:
            timing = ComponentTiming(self.running, time.monotonic() - self._started_at, self._cached)
            self.timings.append(timing)
            self.running = None
            note = "from cache" if timing.cached else "done"
            self._print(f"  {timing.component_id:<32} {note} in {timing.seconds:.1f} s")
            if self.on_finished:
                self.on_finished()

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


@contextlib.contextmanager
def only_errors_from(logger_name: str) -> Iterator[None]:
    """Drops the logger's records below ERROR until the block ends.

    For TensorFlow's logger during a run: its deprecation notices and the warnings of TF1-mode
    Transform ("Issue encountered when serializing ...", "probably safe to ignore") are noise next
    to the progress lines. A filter rather than a level, which TensorFlow may set again.
    """
    logger = logging.getLogger(logger_name)
    logger.addFilter(_is_error)
    try:
        yield
    finally:
        logger.removeFilter(_is_error)


def _is_error(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """For a run without --verbose: only our progress lines and errors reach the terminal.

    - TensorFlow's C++ logs: TF_CPP_MIN_LOG_LEVEL=3 (errors too). Importing TensorFlow 2.16 logs
      three errors that are not ("Unable to register cuFFT/cuDNN/cuBLAS factory: Attempting to
      register factory for plugin ... when one has already been registered"); a real error also
      raises, and the run reports that. TensorFlow reads the variable once, at its first log, so it
      is set before TensorFlow is imported, in os.environ, which every child process inherits.
    - Python loggers other than absl's (which the progress reporter reads): only errors, Beam's
      included ("Couldn't find python-snappy ...", at import).
    - Python warnings (numpy's RuntimeWarnings on NaN statistics, deprecations): not shown.
    """
    if "tensorflow" not in sys.modules:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    loggers = [logging.getLogger(), logging.getLogger("apache_beam")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def quietly(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command handler that runs under `quiet_libraries()`."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        with quiet_libraries():
            return command(args)

    return run
