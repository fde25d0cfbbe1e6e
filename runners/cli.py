"""Command line.

  python -m pipeline run-local [--config FILE] [--data DIR] [--output-dir DIR] [--wait-for-lock] [--verbose]
  python -m pipeline report    [--config FILE] [--output-dir DIR] [--run RUN_ID | --list] [--output FILE]
  python -m pipeline schema    [--config FILE] [--data DIR] [--output FILE]
  python -m pipeline compile  --env ENV --image REGISTRY/REPO/NAME@sha256:<digest>
  python -m pipeline submit   --env ENV [--spec FILE] [--wait] [--timeout S] [--summary-file F]
  python -m pipeline schedule --env ENV [--spec FILE]
  python -m pipeline promote  --env ENV canary (--version N | --alias A) --traffic P | finish | rollback
                              [--dry-run [--plan-file F]] | apply --plan F

ENV names configs/vertex-ENV.yaml, merged on top of configs/base.yaml. Each command lives with its
machinery (runners/local, runners/report, runners/vertex, runners/promotion) and registers its own
parser and handler; exit codes are in runners/errors.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from runners.local.command import add_run_local_parser
from runners.local.schema_proposal import add_schema_parser
from runners.promotion.cli import add_promote_parser
from runners.report.command import add_report_parser
from runners.vertex.commands import add_vertex_parsers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_local_parser(commands)
    add_report_parser(commands)
    add_schema_parser(commands)
    add_vertex_parsers(commands)
    add_promote_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
