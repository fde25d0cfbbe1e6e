"""Benchmark arithmetic and tables: medians of runs, ours/template ratios per pair, printed tables.

Pure functions over the JSON-shaped dicts that tools.bench.bench writes, so they are tested without
running anything. A run is `{"wall_seconds", "peak_rss_mb", "components": {id: seconds}, "metrics",
...}`; a variant is `{"runs": [...], "aggregate": {...}}`. The template runs in one or more Keras
modes, one variant each (`template_<mode>`), each paired with our runs of the same repeat.
"""

from __future__ import annotations

import statistics
from typing import Any

Spread = dict[str, float]

OURS, OURS_CACHED = "ours", "ours_cached"
# Results written before the template ran in two Keras modes have one template variant, "template".
TEMPLATE = "template"
TEMPLATE_PREFIX = "template_"
VARIANT_TITLES = {
    TEMPLATE: "TFX taxi template, cold",
    "template_default": "TFX taxi template, cold, Keras 3 (default)",
    "template_legacy": "TFX taxi template, cold, tf_keras (legacy)",
    OURS: "ours, cold",
    OURS_CACHED: "ours, cached re-run",
}


def template_variant(mode: str) -> str:
    return TEMPLATE_PREFIX + mode


def template_modes(variants: dict[str, Any]) -> list[str]:
    """The Keras modes the template ran in, in the variants' order."""
    return [name.removeprefix(TEMPLATE_PREFIX) for name in variants if name.startswith(TEMPLATE_PREFIX)]


def spread(values: list[float]) -> Spread:
    return {"median": round(statistics.median(values), 4), "min": min(values), "max": max(values)}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max over runs: per component, total wall time, peak memory, AUC."""
    component_ids = list(dict.fromkeys(c for run in runs for c in run["components"]))
    aucs = [run["metrics"]["auc"] for run in runs if "auc" in run["metrics"]]
    return {
        "wall_seconds": spread([run["wall_seconds"] for run in runs]),
        "peak_rss_mb": spread([run["peak_rss_mb"] for run in runs]),
        "auc": spread(aucs) if aucs else None,
        "components": {c: spread([run["components"].get(c, 0.0) for run in runs]) for c in component_ids},
    }


def pair_ratios(variants: dict[str, dict[str, Any]], template_name: str) -> list[dict[str, float | None]]:
    """Per pair (the i-th runs of each variant, made back to back): ours / the template variant."""
    template, ours = variants[template_name]["runs"], variants[OURS]["runs"]
    cached = variants.get(OURS_CACHED, {}).get("runs", [])
    pairs = []
    for index, (base, run) in enumerate(zip(template, ours, strict=True)):
        pair = {
            "wall": ratio(run["wall_seconds"], base["wall_seconds"]),
            "peak_rss": ratio(run["peak_rss_mb"], base["peak_rss_mb"]),
        }
        if index < len(cached):
            pair["cached_wall"] = ratio(cached[index]["wall_seconds"], base["wall_seconds"])
        pairs.append(pair)
    return pairs


def ratio_medians(pairs: list[dict[str, float | None]]) -> dict[str, float]:
    keys = list(dict.fromkeys(key for pair in pairs for key in pair))
    medians = {}
    for key in keys:
        values = [pair[key] for pair in pairs if pair.get(key) is not None]
        if values:
            medians[key] = round(statistics.median(values), 3)
    return medians


def variant_table(name: str, variant: dict[str, Any]) -> str:
    agg = variant["aggregate"]
    title = f"{VARIANT_TITLES.get(name, name)} ({len(variant['runs'])} run(s))"
    lines = [f"{title:<34} {'median s':>9} {'min s':>7} {'max s':>7}"]
    for component, s in agg["components"].items():
        lines.append(f"  {component:<32} {s['median']:>9.2f} {s['min']:>7.2f} {s['max']:>7.2f}")
    for label, key in (("total wall (process)", "wall_seconds"), ("peak memory MB", "peak_rss_mb")):
        s = agg[key]
        lines.append(f"  {label:<32} {s['median']:>9.2f} {s['min']:>7.2f} {s['max']:>7.2f}")
    if agg["auc"]:
        s = agg["auc"]
        lines.append(f"  {'eval AUC':<32} {s['median']:>9.4f} {s['min']:>7.4f} {s['max']:>7.4f}")
    return "\n".join(lines)


def pairs_table(result: dict[str, Any], mode: str) -> str:
    variants = result["variants"]
    template, ours = variants[template_variant(mode)]["runs"], variants[OURS]["runs"]
    cached = variants.get(OURS_CACHED, {}).get("runs", [])
    header = (
        f"{'pair':<7} {'template s':>10} {'ours s':>8} {'ratio':>6}   {'template MB':>11} {'ours MB':>8} "
        f"{'ratio':>6}   {'cached s':>8} {'ratio':>6}"
    )
    lines = [header]
    for index, pair in enumerate(result["pairs"][mode]):
        cached_wall = cached[index]["wall_seconds"] if index < len(cached) else None
        lines.append(
            f"{index + 1:<7} {template[index]['wall_seconds']:>10.1f} {ours[index]['wall_seconds']:>8.1f} "
            f"{_num(pair['wall']):>6}   {template[index]['peak_rss_mb']:>11.0f} {ours[index]['peak_rss_mb']:>8.0f} "
            f"{_num(pair['peak_rss']):>6}   {_num(cached_wall, 1):>8} {_num(pair.get('cached_wall')):>6}"
        )
    medians = result["pair_ratios"][mode]
    lines.append(
        f"{'median':<7} {'':>10} {'':>8} {_num(medians.get('wall')):>6}   {'':>11} {'':>8} "
        f"{_num(medians.get('peak_rss')):>6}   {'':>8} {_num(medians.get('cached_wall')):>6}"
    )
    title = VARIANT_TITLES.get(template_variant(mode), mode)
    return f"ratio = ours / {title}, per pair of runs made back to back\n" + "\n".join(lines)


def modes_table(result: dict[str, Any]) -> str:
    """One line per Keras mode of the template: median and range of the per-pair ratios."""
    header = "ours / template: median (min-max) of pairs"
    lines = [f"{header:<46} {'cold wall':>17} {'peak memory':>17} {'cached wall':>17}"]
    for mode, pairs in result["pairs"].items():
        cells = []
        for key in ("wall", "peak_rss", "cached_wall"):
            values = [pair[key] for pair in pairs if pair.get(key) is not None]
            median = result["pair_ratios"][mode].get(key)
            cells.append(f"{_num(median)} ({_num(min(values))}-{_num(max(values))})" if values else "-")
        label = f"  {mode}: {VARIANT_TITLES.get(template_variant(mode), mode)}"
        lines.append(f"{label:<46} {cells[0]:>17} {cells[1]:>17} {cells[2]:>17}")
    return "\n".join(lines)


def bytecode_line(bytecode: dict[str, Any]) -> str:
    venv = bytecode["venv"]
    warmup = bytecode.get("warmup_sources_compiled")
    line = (
        f"bytecode: PYTHONDONTWRITEBYTECODE={bytecode['PYTHONDONTWRITEBYTECODE'] or '(unset)'}; "
        f"venv sources without .pyc: {venv['sources_without_pyc']}; compiled before timing: "
        f"{', '.join(bytecode['compiled_before_timing'])}; "
        f"warm-up imports compiled from source: {'-' if warmup is None else len(warmup)}"
    )
    edited = bytecode.get("sources_edited_during_repeat") or []
    for index, sources in enumerate(edited):
        if sources:
            line += f"\nwarning: repeat {index + 1} ran while our sources changed: {', '.join(sources)}"
    return line


def result_tables(result: dict[str, Any]) -> str:
    parts = [variant_table(name, variant) for name, variant in result["variants"].items()]
    for mode in result.get("pairs", {}):
        parts.append(pairs_table(result, mode))
    if result.get("pairs"):
        parts.append(modes_table(result))
    if result.get("bytecode"):
        parts.append(bytecode_line(result["bytecode"]))
    return "\n\n".join(parts)


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
