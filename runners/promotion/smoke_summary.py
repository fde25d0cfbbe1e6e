"""The smoke test's decision and the numbers behind it: as lines for the terminal, and as Markdown
appended to a summary file (`--summary-file`, e.g. $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

from pathlib import Path

from runners.promotion.smoke import ModelResult, SmokeResult, needed_text, probability_text


def result_lines(result: SmokeResult) -> list[str]:
    plan, config = result.plan, result.config
    lines = [
        f"smoke test: {'passed' if result.passed else 'FAILED'}; sent {result.requests} requests "
        f"(at least {plan.min_predictions}; v{plan.canary_version} at {plan.canary_percent}% needs "
        f"{plan.needed_answers} answers, {needed_text(plan.warmup_answers)}: missed with probability "
        f"{probability_text(plan.miss_probability)}, limit {probability_text(plan.max_miss_probability)})",
        f"  errors: {len(result.errors)} of {result.requests} ({result.error_rate:.1%}, "
        f"limit {config.max_error_rate:.1%})",
    ]
    for model in result.models:
        lines.append(
            f"  {model.label}, deployed model {model.serving.deployed_model_id}: {model.answers} answers, "
            f"{_share(model, result)} of the answers (configured {model.serving.percent}%); "
            f"{result.percentile_label} {_ms(model.latency(config.latency_percentile))} over "
            f"{len(model.timed_ms)} after {len(model.warmup_ms)} warm-up excluded ({_warmup(model)}), "
            f"max {_ms(model.latency(100))}; limit {config.max_latency_ms} ms"
        )
    return lines


def result_markdown(result: SmokeResult) -> str:
    plan, config = result.plan, result.config
    label = result.percentile_label
    verdict = "passed" if result.passed else "FAILED"
    lines = [
        f"### Smoke test of v{plan.canary_version} ({plan.canary_percent}% of the traffic): {verdict}",
        "",
        "| | |",
        "| --- | --- |",
        f"| Requests sent | {result.requests} (at least {plan.min_predictions}; the canary's share alone needs "
        f"{plan.canary_requests}) |",
        f"| Canary answers needed | {plan.needed_answers} ({needed_text(plan.warmup_answers)}) |",
        f"| Miss probability | {probability_text(plan.miss_probability)} (limit "
        f"{probability_text(plan.max_miss_probability)}): v{plan.canary_version} at {plan.canary_percent}% "
        f"answers fewer than {plan.needed_answers} of {result.requests} |",
        f"| Errors | {len(result.errors)} of {result.requests}: {result.error_rate:.1%} "
        f"(limit {config.max_error_rate:.1%}) |",
        f"| Latency | {label} of each deployed model after its first {config.warmup_answers} answer(s), "
        f"limit {config.max_latency_ms} ms |",
        "",
        f"| Deployed model | Version | Traffic configured | Answers | Share observed | Warm-up excluded | "
        f"p50 | {label} | max |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for model in result.models:
        latency = config.latency_percentile
        lines.append(
            f"| {model.serving.deployed_model_id} | {model.label} | {model.serving.percent}% | {model.answers} | "
            f"{_share(model, result)} | {len(model.warmup_ms)} ({_warmup(model)}) | {_ms(model.latency(50))} | "
            f"{_ms(model.latency(latency))} | {_ms(model.latency(100))} |"
        )
    if result.failures:
        lines += ["", "Failed:", ""] + [f"- {_cell(failure)}" for failure in result.failures]
    if result.errors:
        lines += ["", f"First error: {_cell(result.errors[0])}"]
    return "\n".join(lines) + "\n\n"


def append_markdown(path: Path, result: SmokeResult) -> None:
    """Appends (GitHub collects the step summary from every step that appends to the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as summary:
        summary.write(result_markdown(result))


def _share(model: ModelResult, result: SmokeResult) -> str:
    return f"{model.answers / result.answered:.1%}" if result.answered else "-"


def _warmup(model: ModelResult) -> str:
    return ", ".join(f"{latency:.0f} ms" for latency in model.warmup_ms) or "none"


def _ms(latency: float | None) -> str:
    return "-" if latency is None else f"{latency:.0f} ms"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
