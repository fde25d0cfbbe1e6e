"""Small inline SVG charts: no script, no fonts or files from elsewhere, readable when printed."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BAR = "#3b6ea8"
BAR_LIGHT = "#9bb7d9"
FAIL = "#c0392b"
LINE = "#555"
TEXT = "#333"
UNDEFINED = "#bbb"


def histogram(buckets: Sequence[tuple[float, float, float]], width: int = 260, height: int = 84) -> str:
    """Equal-width buckets (low, high, count) as columns, with the range written below."""
    if not buckets:
        return _empty(width, height)
    plot_height = height - 18
    top = max(count for _, _, count in buckets) or 1.0
    step = width / len(buckets)
    bars = []
    for index, (low, high, count) in enumerate(buckets):
        bar_height = plot_height * count / top
        bars.append(
            f'<rect x="{index * step + 1:.1f}" y="{plot_height - bar_height:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{bar_height:.1f}" fill="{BAR}"><title>{_number(low)} to {_number(high)}: '
            f"{count:,.0f}</title></rect>"
        )
    labels = (
        f'<text x="0" y="{height - 3}" font-size="10" fill="{TEXT}">{escape(_number(buckets[0][0]))}</text>'
        f'<text x="{width}" y="{height - 3}" font-size="10" fill="{TEXT}" text-anchor="end">'
        f"{escape(_number(buckets[-1][1]))}</text>"
    )
    axis = f'<line x1="0" y1="{plot_height}" x2="{width}" y2="{plot_height}" stroke="{LINE}" stroke-width="0.5"/>'
    return _svg(width, height, "".join(bars) + axis + labels)


def top_values(values: Sequence[tuple[str, float]], total: float, width: int = 260, row: int = 15) -> str:
    """The most frequent values as horizontal bars, with their share of `total` rows."""
    if not values:
        return _empty(width, row * 2)
    label_width = width * 0.6
    bar_space = width - label_width - 34
    top = max(count for _, count in values) or 1.0
    rows = []
    for index, (value, count) in enumerate(values):
        y = index * row
        share = count / total if total else 0.0
        bar = bar_space * count / top
        rows.append(
            f'<text x="{label_width - 4:.1f}" y="{y + 11}" font-size="10" fill="{TEXT}" text-anchor="end">'
            f"{escape(_shorten(value or '(empty)', 25))}</text>"
            f'<rect x="{label_width:.1f}" y="{y + 3}" width="{max(bar, 1):.1f}" height="{row - 5}" fill="{BAR}">'
            f"<title>{escape(value)}: {count:,.0f}</title></rect>"
            f'<text x="{label_width + bar + 3:.1f}" y="{y + 11}" font-size="10" fill="{TEXT}">{share:.0%}</text>'
        )
    return _svg(width, row * len(values), "".join(rows))


def slice_bars(
    slices: Sequence[tuple[str, float | None]],
    threshold: float | None,
    width: int = 720,
    height: int = 170,
    higher_is_better: bool = True,
) -> str:
    """One metric per slice as columns, from 0 to 1 (or to the largest value above 1); a dashed line
    at the threshold, slices on its wrong side in red; an undefined value (None) as a grey mark."""
    if not slices:
        return _empty(width, 40)
    plot_top, plot_bottom, left = 8, height - 30, 34
    plot_height = plot_bottom - plot_top
    step = (width - left) / len(slices)
    top = max([1.0, *(value for _, value in slices if value is not None), threshold or 0.0])
    parts = [
        f'<line x1="{left}" y1="{plot_bottom}" x2="{width}" y2="{plot_bottom}" stroke="{LINE}" stroke-width="0.5"/>',
        f'<text x="{left - 4}" y="{plot_top + 8}" font-size="10" text-anchor="end" fill="{TEXT}">{top:.3g}</text>',
        f'<text x="{left - 4}" y="{plot_bottom}" font-size="10" text-anchor="end" fill="{TEXT}">0.0</text>',
    ]
    for index, (name, value) in enumerate(slices):
        x = left + index * step
        if value is None:
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{plot_bottom - 2:.1f}" width="{max(step - 2, 1):.1f}" height="2" '
                f'fill="{UNDEFINED}"><title>{escape(name)}: undefined</title></rect>'
            )
        else:
            shown = min(max(value, 0.0), top) / top
            failing = threshold is not None and (value < threshold if higher_is_better else value > threshold)
            bar_height = max(plot_height * shown, 2.0 if failing else 0.0)  # a failing 0 stays visible
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{plot_bottom - bar_height:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{bar_height:.1f}" fill="{FAIL if failing else BAR_LIGHT}">'
                f"<title>{escape(name)}: {_metric(value)}</title></rect>"
            )
        parts.append(
            f'<text x="{x + step / 2:.1f}" y="{plot_bottom + 12}" font-size="9" text-anchor="middle" '
            f'fill="{TEXT}">{escape(_shorten(name, 6))}</text>'
        )
    if threshold is not None:
        y = plot_bottom - plot_height * min(max(threshold, 0.0), top) / top
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="{FAIL}" stroke-dasharray="5,3"/>'
            f'<text x="{width - 2}" y="{y - 3:.1f}" font-size="10" text-anchor="end" fill="{FAIL}">'
            f"threshold {threshold:g}</text>"
        )
    return _svg(width, height, "".join(parts))


def _svg(width: int, height: int, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">{body}</svg>'
    )


def _empty(width: int, height: int) -> str:
    return _svg(width, height, f'<text x="0" y="14" font-size="11" fill="{TEXT}">no values</text>')


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}"


def _metric(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"
