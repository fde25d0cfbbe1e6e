"""Beam arguments that run a component's Beam pipeline on Dataflow.

Fixed when the spec is compiled. They are set per Beam component
(`component.with_beam_pipeline_args`), because pipeline-level `beam_pipeline_args` would go to
every component. The pipeline image doubles as the worker image (`--sdk_container_image`), so
workers start with the project's code and TFX installed instead of pip-installing them.
"""

from __future__ import annotations

from pipeline.config import VertexRunnerConfig


def dataflow_args(runner: VertexRunnerConfig) -> list[str]:
    """The DataflowRunner flags for `runner`; needs runner.image (pinned by digest)."""
    if runner.image is None:
        raise ValueError("runner.image is not set: Dataflow workers need the pipeline image")
    dataflow = runner.dataflow
    args = [
        "--runner=DataflowRunner",
        f"--project={runner.project}",
        f"--region={runner.region}",
        f"--temp_location={runner.dataflow_temp_location}",
        f"--staging_location={runner.dataflow_staging_location}",
        f"--sdk_container_image={runner.image}",
        f"--service_account_email={dataflow.service_account}",
        f"--max_num_workers={dataflow.max_workers}",
        f"--machine_type={dataflow.machine_type}",
        f"--disk_size_gb={dataflow.disk_size_gb}",
    ]
    if dataflow.subnetwork:
        args.append(f"--subnetwork={dataflow.subnetwork}")
    args.append("--use_public_ips" if dataflow.use_public_ips else "--no_use_public_ips")
    args.extend(f"--labels={key}={value}" for key, value in sorted(runner.labels.items()))
    return args
