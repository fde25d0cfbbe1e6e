"""Runs the pipeline on this machine: TFX LocalDagRunner, Beam DirectRunner, SQLite metadata."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import TextIO

from pipeline.config import PipelineConfig
from runners.local.memory import release_freed_memory, startup_objects_frozen
from runners.local.progress import ProgressReporter, only_errors_from
from runners.local.run_summary import RunSummary
from runners.local.summary_reader import read_run_summary


def run_local(config: PipelineConfig, stream: TextIO = sys.stdout, verbose: bool = False) -> RunSummary:
    """Runs every component in order; raises whatever a failing component raised."""
    from absl import logging as absl_logging
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(config)
    absl_logger = logging.getLogger("absl")
    reporter = ProgressReporter(stream, on_finished=release_freed_memory)
    previous_verbosity = absl_logging.get_verbosity()
    # Through absl, not Logger.setLevel: TensorFlow resets absl's verbosity while saving models.
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logger.addHandler(reporter)
    if not verbose:
        # TFX logs every step at INFO; the reporter prints the essentials instead.
        absl_logger.propagate = False
    started = time.monotonic()
    try:
        # TensorFlow's warnings too are shown only with --verbose.
        with contextlib.nullcontext() if verbose else only_errors_from("tensorflow"), startup_objects_frozen():
            LocalDagRunner().run(pipeline)
    except BaseException:
        if reporter.running:
            stream.write(f"  {reporter.running:<32} FAILED after {reporter.running_seconds:.1f} s\n")
        raise
    finally:
        absl_logger.removeHandler(reporter)
        absl_logging.set_verbosity(previous_verbosity)
        absl_logger.propagate = True
    stream.write(f"Pipeline finished in {time.monotonic() - started:.1f} s\n")
    return read_run_summary(config, reporter.timings)
