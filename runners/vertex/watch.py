"""Follows a pipeline job until it ends or a timeout passes, printing each state change.

SDK 1.70's `PipelineJob.wait()` raises only for FAILED and cannot stop early; this loop polls
`job.state` (the SDK retries 429/503 on that GET) with an interval the caller chooses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from google.cloud import aiplatform

SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})


@dataclass(frozen=True)
class WatchResult:
    state: str
    timed_out: bool
    elapsed: float


def state_name(state: object) -> str:
    """'RUNNING' for PipelineState.PIPELINE_STATE_RUNNING."""
    return getattr(state, "name", str(state)).removeprefix("PIPELINE_STATE_")


def watch(
    job: aiplatform.PipelineJob,
    *,
    timeout: float | None,
    poll_interval: float,
    out: TextIO,
) -> WatchResult:
    """Polls until SUCCEEDED, FAILED or CANCELLED, or until `timeout` seconds have passed.

    The first line is the state the create call answered with; then every change seen.
    """
    started = time.monotonic()
    previous = None
    state = state_name(job.gca_resource.state)
    while True:
        elapsed = time.monotonic() - started
        if state != previous and state != "UNSPECIFIED":
            out.write(f"  {_clock_time(elapsed):>9}  {state}\n")
            out.flush()
            previous = state
        if state in TERMINAL_STATES:
            return WatchResult(state, timed_out=False, elapsed=elapsed)
        remaining = None if timeout is None else timeout - elapsed
        if remaining is not None and remaining <= 0:
            return WatchResult(state, timed_out=True, elapsed=elapsed)
        time.sleep(poll_interval if remaining is None else min(poll_interval, remaining))
        state = state_name(job.state)


def _clock_time(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
