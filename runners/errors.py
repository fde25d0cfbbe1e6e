"""Exit codes of `python -m pipeline` and the one line a command ends with when it fails."""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and failed (a run, a promotion step)
EXIT_BAD_INPUT = 2  # refused before any change: config, data, arguments, state
EXIT_NOT_BLESSED = 3  # run-local --require-blessing: the run completed, the model is not blessed
EXIT_TIMEOUT = 4  # submit --wait --timeout: the run was left running


def fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    """Prints `error: <message>` on stderr and returns `status`, for `return fail(...)`."""
    print(f"error: {message}", file=sys.stderr)
    return status
