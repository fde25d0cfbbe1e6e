"""Compiles the pipeline into a KFP v2 PipelineJob spec (JSON) for Vertex AI Pipelines.

Compiling is offline: no credentials, no Cloud Storage or API calls. The spec fixes the image
(pinned by digest), the Dataflow arguments and the training job.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import PipelineConfig, VertexRunnerConfig
from pipeline.image import require_digest


def compile_pipeline(config: PipelineConfig, output: Path) -> Path:
    """Writes the spec of `create_pipeline(config)` to `output` and returns it."""
    runner = config.runner
    if not isinstance(runner, VertexRunnerConfig):
        raise ValueError(f"runner.kind is '{runner.kind}'; compiling for Vertex AI needs runner.kind 'vertex'")
    if runner.image is None:
        raise ValueError("no pipeline image: pass --image REGISTRY/REPO/NAME@sha256:<digest> or set runner.image")
    image = require_digest(runner.image)

    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    dag_runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=str(output.parent),
        output_filename=output.name,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    dag_runner.run(create_pipeline(config), write_out=True)
    return output
