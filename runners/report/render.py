"""The run report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched."""

from __future__ import annotations

from html import escape

from runners.report import charts
from runners.report.collect import FeatureStats, RunData, SliceMetrics, Threshold

SECTIONS = (
    ("summary", "Summary"),
    ("steps", "Steps"),
    ("statistics", "Dataset statistics"),
    ("anomalies", "Anomalies"),
    ("schema", "Schema"),
    ("evaluation", "Evaluation"),
    ("blessing", "Blessing"),
    ("baseline", "Baseline"),
    ("signatures", "Signatures"),
)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #f6f7f9; }
header { background: #1f3b5c; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .85; }
nav { padding: 8px 32px; background: #e8ecf2; position: sticky; top: 0; }
nav a { margin-right: 14px; color: #1f3b5c; text-decoration: none; font-weight: 600; }
main { padding: 8px 32px 40px; max-width: 1200px; }
section { background: #fff; border: 1px solid #dde2ea; border-radius: 6px; padding: 14px 20px; margin: 16px 0; }
h2 { font-size: 18px; margin: 4px 0 12px; color: #1f3b5c; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #e6e9ef; vertical-align: top; }
th { background: #f0f3f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1e7b34; font-weight: 700; }
.bad { color: #b3261e; font-weight: 700; }
.muted { color: #777; }
.features { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
.feature { border: 1px solid #e3e7ee; border-radius: 5px; padding: 8px 12px; }
.feature h3 { font-size: 15px; margin: 2px 0 6px; }
.feature .type { font-weight: 400; color: #777; font-size: 12px; }
.splits { display: flex; gap: 18px; }
.split { flex: 1; min-width: 0; }
.split table td, .split table th { padding: 1px 6px; font-size: 12px; }
.caption { font-size: 12px; color: #555; margin: 2px 0; }
pre { background: #f4f6f9; padding: 10px; overflow: auto; font-size: 12px; max-height: 480px; }
ul.anomalies li { margin: 4px 0; }
code { background: #f0f3f7; padding: 0 3px; border-radius: 3px; }
"""


def render(data: RunData) -> str:
    body = "".join(
        [
            _summary(data),
            _steps(data),
            _statistics(data),
            _anomalies(data),
            _schema(data),
            _evaluation(data),
            _blessing(data),
            _baseline(data),
            _signatures(data),
        ]
    )
    nav = "".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in SECTIONS)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(data.pipeline_name)} run {escape(data.run_id)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>Run report: {escape(data.pipeline_name)}</h1>"
        f"<p>Run {escape(data.run_id)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )


def _section(anchor: str, content: str) -> str:
    title = dict(SECTIONS)[anchor]
    return f'<section id="{anchor}"><h2>{title}</h2>{content}</section>'


def _summary(data: RunData) -> str:
    stopped = [component for component, state in data.executions.items() if state not in ("COMPLETE", "CACHED")]
    outcome = (
        f'<span class="bad">stopped at {escape(stopped[0])} ({escape(data.executions[stopped[0]])})</span>'
        if stopped
        else '<span class="ok">completed</span>'
    )
    overall = next((m for m in data.metrics if m.name == "Overall"), None)
    metrics = (
        ", ".join(f"{name} {format_metric(name, value)}" for name, value in overall.values.items())
        if overall
        else "none"
    )
    rows = ", ".join(f"{split.split} {split.rows:,}" for split in data.statistics) or "unknown"
    anomalies = "not checked" if data.anomalies is None else (f"{len(data.anomalies)}" if data.anomalies else "none")
    table = _table(
        ["", ""],
        [
            ["Run", escape(data.run_id)],
            ["Outcome", outcome],
            ["Task", escape(data.task_description or "unknown")],
            ["Rows", escape(rows)],
            ["Anomalies", escape(anomalies)],
            ["Eval metrics (overall)", escape(metrics)],
            ["Model", _verdict(data.blessed)],
            ["Pushed model", escape(data.pushed_model or "none pushed in this run")],
        ],
        header=False,
    )
    return _section("summary", table)


def _steps(data: RunData) -> str:
    rows = [[escape(component), _state(state)] for component, state in data.executions.items()]
    return _section("steps", _table(["Component", "State in this run"], rows))


def _statistics(data: RunData) -> str:
    if not data.statistics:
        return _section("statistics", '<p class="muted">No statistics in this run.</p>')
    names = sorted({name for split in data.statistics for name in split.features})
    cards = []
    for name in names:
        per_split = [(split.split, split.features.get(name)) for split in data.statistics]
        kind = next((stats.type for _, stats in per_split if stats), "")
        columns = "".join(_split_stats(split, stats) for split, stats in per_split)
        cards.append(
            f'<div class="feature" id="feature-{escape(name)}"><h3>{escape(name)} '
            f'<span class="type">{escape(kind)}</span></h3><div class="splits">{columns}</div></div>'
        )
    splits = ", ".join(f"{split.split}: {split.rows:,} rows" for split in data.statistics)
    intro = f'<p class="caption">From the StatisticsGen artifact of this run ({escape(splits)}).</p>'
    return _section("statistics", intro + f'<div class="features">{"".join(cards)}</div>')


def _split_stats(split: str, stats: FeatureStats | None) -> str:
    if stats is None:
        return f'<div class="split"><p class="caption">{escape(split)}: absent</p></div>'
    filled = f"{stats.filled / stats.rows:.0%}" if stats.rows else "n/a"
    rows = [["filled", filled]]
    if stats.numeric:
        numeric = stats.numeric
        rows += [
            ["mean", f"{numeric.mean:,.4g}"],
            ["std dev", f"{numeric.std_dev:,.4g}"],
            ["min", f"{numeric.min:,.4g}"],
            ["median", "n/a" if numeric.median is None else f"{numeric.median:,.4g}"],
            ["max", f"{numeric.max:,.4g}"],
            ["zeros", f"{numeric.zeros / stats.rows:.0%}" if stats.rows else "n/a"],
        ]
        chart = charts.histogram(numeric.buckets)
    else:
        strings = stats.strings
        rows += [["unique", f"{strings.unique:,}" if strings else "0"]]
        chart = charts.top_values(strings.top if strings else [], stats.rows)
    cells = "".join(f'<tr><th>{name}</th><td class="num">{escape(value)}</td></tr>' for name, value in rows)
    return (
        f'<div class="split" data-split="{escape(split)}"><p class="caption">{escape(split)}</p>'
        f"{chart}<table>{cells}</table></div>"
    )


def _anomalies(data: RunData) -> str:
    if data.anomalies is None:
        content = '<p class="muted">ExampleValidator did not run in this run.</p>'
    elif not data.anomalies:
        content = '<p class="ok" id="no-anomalies">none: the data matches the schema</p>'
    else:
        items = "".join(
            f"<li><b>{escape(a.feature)}</b> [{escape(', '.join(a.splits))}]: expected {escape(a.expected)}; "
            f"found {escape(a.found)}</li>"
            for a in data.anomalies
        )
        content = (
            f'<p class="bad">{len(data.anomalies)} anomalies: the validation gate stopped the run.</p>'
            f'<ul class="anomalies">{items}</ul>'
            "<p>To accept a legitimate change in the data: <code>make schema</code>, then see "
            "docs/data-validation.md.</p>"
        )
    return _section("anomalies", content)


def _schema(data: RunData) -> str:
    if not data.schema_rows:
        return _section("schema", '<p class="muted">No schema in this run.</p>')
    rows = [
        [f"<b>{escape(r.name)}</b>", escape(r.type), escape(r.presence), escape(r.domain), escape(r.environments)]
        for r in data.schema_rows
    ]
    table = _table(["Feature", "Type", "Values", "Domain", "Environments"], rows)
    raw = f"<details><summary>schema.pbtxt as imported</summary><pre>{escape(data.schema_text or '')}</pre></details>"
    source = f'<p class="caption">{escape(data.schema_uri or "")}</p>'
    return _section("schema", source + table + raw)


def _evaluation(data: RunData) -> str:
    if not data.metrics:
        return _section("evaluation", '<p class="muted">The Evaluator did not run in this run.</p>')
    names = list(dict.fromkeys(name for m in data.metrics for name in m.values))
    thresholds = {t.metric: t for t in data.thresholds}
    overall = [m for m in data.metrics if m.name == "Overall"]
    slices = [m for m in data.metrics if m.name != "Overall"]
    has_baseline = any(m.baseline for m in overall)
    header = ["Metric", "Candidate"] + (["Baseline"] if has_baseline else []) + ["Threshold"]
    rows = []
    for name in names:
        row = [escape(name), _metric_cell(overall[0] if overall else None, name)]
        if has_baseline:
            row.append(_metric_cell(overall[0], name, model="baseline"))
        threshold = thresholds.get(name)
        row.append(escape(threshold.text) if threshold else '<span class="muted">reported only</span>')
        rows.append(row)
    content = "<h3>Overall</h3>" + _table(header, rows)
    if slices:
        chart_metric = _chart_metric(data, names)
        bound = next((t for t in data.thresholds if t.metric == chart_metric and t.slices == "every slice"), None)
        chart = charts.slice_bars(
            [(m.name.partition(" = ")[2] or m.name, m.values.get(chart_metric)) for m in slices],
            bound.bar if bound else None,
            higher_is_better=bound.higher_is_better if bound else True,
        )
        column = slices[0].name.partition(" = ")[0]
        slice_rows = [[escape(m.name)] + [_metric_cell(m, name) for name in names] for m in slices]
        content += (
            f"<h3>Per slice: {escape(column)}</h3>"
            f'<p class="caption">{escape(chart_metric)} per slice{_slice_note(chart_metric, bound, thresholds)}</p>'
            f"{chart}" + _table(["Slice", *names], slice_rows)
        )
    return _section("evaluation", content)


def _chart_metric(data: RunData, names: list[str]) -> str:
    """The blessing metric (the one with an overall threshold), else the first one computed."""
    gated = [t.metric for t in data.thresholds if t.metric in names]
    return gated[0] if gated else names[0]


def _slice_note(metric: str, bound: Threshold | None, thresholds: dict[str, Threshold]) -> str:
    notes = []
    if bound:
        notes.append("red: on the wrong side of its threshold")
    else:
        other = thresholds.get(metric)
        if other:
            notes.append(f"its threshold applies to {escape(other.slices)} only")
    notes.append("grey: undefined (the slice holds one class)")
    return f" ({'; '.join(notes)})"


def _blessing(data: RunData) -> str:
    if data.blessed is None:
        return _section("blessing", '<p class="muted">Not evaluated in this run.</p>')
    thresholds = "; ".join(f"{t.metric}: {t.text}" for t in data.thresholds) or "none"
    content = f'<p id="verdict">{_verdict(data.blessed)}</p><p>Thresholds: {escape(thresholds)}</p>'
    if data.blessing_failures:
        shown = data.blessing_failures[:30]
        more = len(data.blessing_failures) - len(shown)
        items = "".join(f"<li>{escape(failure)}</li>" for failure in shown)
        content += f'<p>Not blessed because:</p><ul id="blessing-failures">{items}</ul>' + (
            f'<p class="muted">... and {more} more</p>' if more > 0 else ""
        )
    pushed = escape(data.pushed_model) if data.pushed_model else "none pushed in this run"
    return _section("blessing", content + f"<p>Pushed model: {pushed}</p>")


def _baseline(data: RunData) -> str:
    if data.blessed is None:
        return _section("baseline", '<p class="muted">Not evaluated in this run.</p>')
    if data.baseline_model is None:
        content = '<p id="baseline-model">none: no earlier blessed model, so no comparison was made</p>'
    else:
        content = f'<p id="baseline-model">{escape(data.baseline_model)}</p>'
    candidate = escape(data.candidate_model or "unknown")
    return _section("baseline", content + f'<p class="caption">Candidate model: {candidate}</p>')


def _signatures(data: RunData) -> str:
    if not data.signatures:
        return _section("signatures", '<p class="muted">No model trained in this run.</p>')
    rows = [
        [f"<b>{escape(s.name)}</b>", "<br>".join(map(escape, s.inputs)), "<br>".join(map(escape, s.outputs))]
        for s in data.signatures
    ]
    return _section("signatures", _table(["Signature", "Inputs", "Outputs"], rows))


def _metric_cell(metrics: SliceMetrics | None, metric: str, model: str = "candidate") -> str:
    """A value, 'undefined' (with why, on hover) for a value the slice cannot have, 'n/a' when not computed."""
    slice_name = metrics.name if metrics else "Overall"
    values = (metrics.baseline if model == "baseline" else metrics.values) if metrics else {}
    undefined = metric in values and values[metric] is None
    shown = format_metric(metric, values.get(metric)) if metric in values else "n/a"
    why = metrics.undefined.get(metric, "") if metrics and undefined and model == "candidate" else ""
    title = f' title="{escape(why)}"' if why else ""
    return (
        f'<td class="num{" muted" if undefined else ""}" data-slice="{escape(slice_name)}" '
        f'data-metric="{escape(metric)}" data-model="{model}"{title}>{shown}</td>'
    )


def format_metric(metric: str, value: float | None) -> str:
    """4 decimals; counts as whole numbers; 'undefined' for a value a slice cannot have."""
    if value is None:
        return "undefined"
    if "count" in metric and float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.4f}"


def _verdict(blessed: bool | None) -> str:
    if blessed is None:
        return '<span class="muted">not evaluated</span>'
    return '<span class="ok">BLESSED</span>' if blessed else '<span class="bad">NOT BLESSED</span>'


def _state(state: str) -> str:
    css = "ok" if state in ("COMPLETE", "CACHED") else "bad"
    return f'<span class="{css}">{escape(state)}</span>'


def _table(columns: list[str], rows: list[list[str]], header: bool = True) -> str:
    """Cells are HTML; a cell that is already a <td> (with data attributes) is kept as it is."""
    head = "<tr>" + "".join(f"<th>{column}</th>" for column in columns) + "</tr>" if header else ""
    body = "".join(
        "<tr>" + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"
