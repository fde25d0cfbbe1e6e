"""The promotion commands' arguments: checked while parsing, and refused in one line (exit 2).

argparse's own error is the usage, then the message, on several lines; a malformed value here (a
version such as `2@production`, a share of 101%) gets `error: promote canary: argument ...: why`.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from runners.errors import EXIT_BAD_INPUT

# Vertex AI numbers a model's versions 1, 2, ...; an alias is a lowercase letter, then letters,
# digits and '-', 2 to 128 characters (models.mergeVersionAliases), never a number.
VERSION_ID = re.compile(r"[1-9][0-9]{0,18}")
ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]")
MAIN_PROG = "python -m pipeline "  # runners/cli.py's prog


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: `error: <prog>: <message>`."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog.removeprefix(MAIN_PROG)}: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def version_id(text: str) -> str:
    if not VERSION_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"a version ID is a whole number such as 7 (got {text!r}); an alias goes in --alias"
        )
    return text


def alias(text: str) -> str:
    if not ALIAS.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "an alias is a lowercase letter, then letters, digits and '-', such as candidate "
            f"(got {text!r}); a version ID goes in --version"
        )
    return text


def traffic_percent(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,3}", text) or not 1 <= int(text) <= 99:
        raise argparse.ArgumentTypeError(f"the canary's share is a whole number from 1 to 99 (got {text!r})")
    return int(text)
