"""The `--env ENV | --config FILE` choice of the Vertex AI commands, and the config it names."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.config import (
    BASE_CONFIG,
    VERTEX_CONFIG_PREFIX,
    ConfigError,
    PipelineConfig,
    VertexRunnerConfig,
    load_config,
    vertex_config_path,
)


def add_environment(command: argparse.ArgumentParser) -> None:
    where = command.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", help=f"environment: configs/{VERTEX_CONFIG_PREFIX}ENV.yaml (dev, prod, ...)")
    where.add_argument("--config", type=Path, help="environment config file merged on top of base.yaml")


def add_api_endpoint(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--api-endpoint",
        help="talk to this Vertex AI endpoint with anonymous credentials (local stand-ins, e.g. http://127.0.0.1:8765)",
    )


def load_environment(args: argparse.Namespace) -> tuple[PipelineConfig, Path]:
    """The validated config of `--env`/`--config` and its file; ConfigError unless its runner is 'vertex'."""
    config_file = vertex_config_path(args.env) if args.env else args.config
    config = load_config([BASE_CONFIG, config_file])
    if not isinstance(config.runner, VertexRunnerConfig):
        raise ConfigError(f"{config_file}: runner.kind is '{config.runner.kind}'; {args.command} needs 'vertex'")
    return config, config_file
