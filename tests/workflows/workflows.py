"""Reading the GitHub Actions workflows, and running a job's `run:` steps on this machine.

`run_steps` plays a job the way a runner would for its shell steps: in order, each script in bash
with the step's `env:` (expressions evaluated), GITHUB_OUTPUT per step, one GITHUB_STEP_SUMMARY,
and `steps.<id>.outputs` fed to later steps. Steps that use an action are not run (the test
provides what they would: a Python environment, a `gcloud` on PATH). Only the expression forms
the workflows use are understood; anything else fails the test rather than being guessed.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.paths import REPO_ROOT

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
MAKEFILE = REPO_ROOT / "Makefile"
SHA_PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@[0-9a-f]{40}$")


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS_DIR.glob("*.yaml"), *WORKFLOWS_DIR.glob("*.yml")])


def load_workflow(path: Path) -> dict[str, Any]:
    """The workflow as a dict; YAML 1.1 reads the `on:` key as True, which is put back."""
    document = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def triggers(workflow: Mapping[str, Any]) -> dict[str, Any]:
    on = workflow["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on)


def jobs(workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return workflow["jobs"]


def steps(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def action_name(step: Mapping[str, Any]) -> str | None:
    """'google-github-actions/auth' for `uses: google-github-actions/auth@<sha>`, else None."""
    uses = step.get("uses")
    return uses.split("@", 1)[0] if uses else None


def all_steps() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(workflow file name, job id, step) for every step of every workflow."""
    for path in workflow_files():
        for job_id, job in jobs(load_workflow(path)).items():
            for step in steps(job):
                yield path.name, job_id, step


# ---- make commands ---------------------------------------------------------------------------

_SEPARATORS = {";", "&&", "||", "|", "&", "then", "do", "else", "{", "}", "(", ")"}


def make_invocations(script: str) -> list[list[str]]:
    """The argument lists of every `make` command in a shell script (continuations joined)."""
    joined = re.sub(r"\\\n", " ", script)
    found = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0]
        line = re.sub(r"\d*(>>?|<)(&\d+|\s*[^\s;&|]+)", " ", line)  # redirections: 2>&1, > file
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|(){}")
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError as error:
            raise ValueError(f"cannot split {line!r} into words: {error}") from None
        command_start = True
        for index, token in enumerate(tokens):
            if command_start and token == "make":
                arguments = []
                for argument in tokens[index + 1 :]:
                    if argument in _SEPARATORS:
                        break
                    arguments.append(argument)
                found.append(arguments)
            command_start = token in _SEPARATORS
    return found


def make_targets(arguments: list[str]) -> list[str]:
    """Targets among make arguments: neither options nor VAR=value assignments."""
    return [argument for argument in arguments if not argument.startswith("-") and "=" not in argument]


def makefile_targets(makefile: Path = MAKEFILE) -> set[str]:
    """Explicit targets of the Makefile (`name:` at the start of a line; `:=` is an assignment)."""
    targets = set()
    for match in re.finditer(r"^([A-Za-z0-9_./$()-][A-Za-z0-9_./$() -]*?)\s*::?(?!=)", makefile.read_text(), re.M):
        targets.update(name for name in match.group(1).split() if not name.startswith((".", "$")))
    return targets


# ---- expressions -----------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|!|\(|\))"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*))")  # fmt: skip


class ExpressionError(ValueError):
    pass


def evaluate(expression: str, contexts: Mapping[str, Any]) -> Any:
    """Evaluates a GitHub Actions expression body (without `${{ }}`): literals, context paths,
    !, ==, !=, && and || with GitHub's semantics (&& and || return an operand)."""
    tokens = _tokenize(expression)
    position = 0

    def peek() -> tuple[str, Any] | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> tuple[str, Any]:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def primary() -> Any:
        kind, value = take()
        if kind == "op" and value == "(":
            result = disjunction()
            if take() != ("op", ")"):
                raise ExpressionError(f"missing ')' in {expression!r}")
            return result
        if kind == "op" and value == "!":
            return not truthy(primary())
        if kind in ("string", "number"):
            return value
        if kind == "name":
            return _lookup(value, contexts, expression)
        raise ExpressionError(f"unexpected {value!r} in {expression!r}")

    def comparison() -> Any:
        left = primary()
        while peek() in (("op", "=="), ("op", "!=")):
            _, operator = take()
            right = primary()
            equal = _loose(left) == _loose(right)
            left = equal if operator == "==" else not equal
        return left

    def conjunction() -> Any:
        left = comparison()
        while peek() == ("op", "&&"):
            take()
            right = comparison()
            left = right if truthy(left) else left
        return left

    def disjunction() -> Any:
        left = conjunction()
        while peek() == ("op", "||"):
            take()
            right = conjunction()
            left = left if truthy(left) else right
        return left

    result = disjunction()
    if position != len(tokens):
        raise ExpressionError(f"cannot read {expression!r}")
    return result


def _tokenize(expression: str) -> list[tuple[str, Any]]:
    tokens, position = [], 0
    while position < len(expression.rstrip()):
        match = _TOKEN.match(expression, position)
        if not match or match.end() == position:
            raise ExpressionError(f"unsupported expression syntax at {expression[position:]!r}")
        kind = match.lastgroup
        text = match.group(kind)
        if kind == "string":
            tokens.append((kind, text[1:-1].replace("''", "'")))
        elif kind == "number":
            tokens.append((kind, float(text) if "." in text else int(text)))
        elif kind == "name" and text in ("true", "false", "null"):
            tokens.append(("number", {"true": True, "false": False, "null": None}[text]))
        else:
            tokens.append((kind, text))
        position = match.end()
    return tokens


def _lookup(path: str, contexts: Mapping[str, Any], expression: str) -> Any:
    head, *rest = path.split(".")
    if head not in contexts:
        raise ExpressionError(f"context '{head}' is not provided to this test ({expression!r})")
    value: Any = contexts[head]
    for part in rest:
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and value == value  # NaN is falsy


def _loose(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def interpolate(text: Any, contexts: Mapping[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda match: as_text(evaluate(match.group(1), contexts)), str(text))


# ---- running a job's shell steps -------------------------------------------------------------


@dataclass
class StepResult:
    name: str
    returncode: int
    output: str


@dataclass
class JobRun:
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    results: list[StepResult] = field(default_factory=list)
    skipped_actions: list[str] = field(default_factory=list)


def step_label(step: Mapping[str, Any]) -> str:
    return step.get("name") or step.get("id") or step.get("uses") or step["run"].splitlines()[0]


def run_steps(
    job: Mapping[str, Any],
    *,
    workdir: Path,
    environment: Mapping[str, str],
    contexts: Mapping[str, Any],
    summary_file: Path,
    only: set[str] | None = None,
    outputs: Mapping[str, Mapping[str, str]] | None = None,
    timeout: float = 600,
) -> JobRun:
    """Runs the job's `run:` steps (those labelled in `only`, or all) in order; stops at the
    first failure. `outputs` seeds steps.<id>.outputs (from an earlier run of the same job)."""
    if "env" in job or "defaults" in job:
        raise ExpressionError("job-level env and defaults are not supported by this runner")
    run = JobRun(outputs={key: dict(value) for key, value in (outputs or {}).items()})
    for index, step in enumerate(steps(job)):
        if "if" in step or ("shell" in step and step["shell"] != "bash"):
            raise ExpressionError(f"step {step_label(step)!r}: 'if' and non-bash shells are not supported")
        if "uses" in step:
            run.skipped_actions.append(action_name(step))
            continue
        if only is not None and step_label(step) not in only:
            continue
        step_contexts = {**contexts, "steps": {key: {"outputs": value} for key, value in run.outputs.items()}}
        output_file = workdir.parent / f"github-output-{index}"
        output_file.write_text("")
        env = dict(environment)
        env.update({key: interpolate(value, step_contexts) for key, value in step.get("env", {}).items()})
        env.update(GITHUB_OUTPUT=str(output_file), GITHUB_STEP_SUMMARY=str(summary_file))
        command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]]
        if "shell" not in step:
            command = ["bash", "-e", "-c", step["run"]]  # the runner's default for Linux jobs
        completed = subprocess.run(
            command,
            cwd=workdir / step.get("working-directory", "."),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        run.results.append(StepResult(step_label(step), completed.returncode, completed.stdout + completed.stderr))
        if "id" in step:
            run.outputs[step["id"]] = parse_outputs(output_file.read_text())
        if completed.returncode != 0:
            break
    return run


def parse_outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT lines: name=value, or name<<DELIMITER ... DELIMITER."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for content in lines:
                if content == delimiter:
                    break
                body.append(content)
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs
