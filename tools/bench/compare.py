"""Compares two benchmark results: `python -m tools.bench.compare A.json B.json [--variant NAME]`.

Prints, for one variant of both results (default: ours, cold), the medians of A and B and the
ratio B / A per component, for total wall time, peak memory and eval AUC. Results from different
hours are only comparable as far as this machine's speed held still between them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.bench.report import OURS, ratio

Row = dict[str, float | None]


def compare(a: dict[str, Any], b: dict[str, Any], variant: str = OURS) -> dict[str, Any]:
    """Medians of A and B and B / A; components of either result, None where one lacks it."""
    agg_a, agg_b = _aggregate(a, variant), _aggregate(b, variant)

    def row(spread_a: dict[str, float] | None, spread_b: dict[str, float] | None) -> Row:
        median_a = spread_a["median"] if spread_a else None
        median_b = spread_b["median"] if spread_b else None
        return {"a": median_a, "b": median_b, "ratio": ratio(median_b, median_a)}

    components = list(dict.fromkeys([*agg_a["components"], *agg_b["components"]]))
    return {
        "components": {c: row(agg_a["components"].get(c), agg_b["components"].get(c)) for c in components},
        "wall_seconds": row(agg_a["wall_seconds"], agg_b["wall_seconds"]),
        "peak_rss_mb": row(agg_a["peak_rss_mb"], agg_b["peak_rss_mb"]),
        "auc": row(agg_a["auc"], agg_b["auc"]),
    }


def _aggregate(result: dict[str, Any], variant: str) -> dict[str, Any]:
    variants = result["variants"]
    if variant not in variants:
        raise ValueError(f"no variant {variant!r} in the result (it has: {', '.join(variants)})")
    return variants[variant]["aggregate"]


def comparison_table(comparison: dict[str, Any]) -> str:
    lines = [f"{'median':<34} {'A':>9} {'B':>9} {'B/A':>7}"]
    rows = [(f"  {c}", r, 2) for c, r in comparison["components"].items()]
    rows += [("total wall s", comparison["wall_seconds"], 2), ("peak memory MB", comparison["peak_rss_mb"], 0)]
    rows += [("eval AUC", comparison["auc"], 4)]
    for label, r, digits in rows:
        lines.append(f"{label:<34} {_num(r['a'], digits):>9} {_num(r['b'], digits):>9} {_num(r['ratio'], 3):>7}")
    return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.compare", description=__doc__)
    parser.add_argument("a", type=Path, help="the reference result (JSON from tools.bench.bench)")
    parser.add_argument("b", type=Path, help="the result compared with it")
    parser.add_argument(
        "--variant",
        default=OURS,
        help="ours, ours_cached, template_default or template_legacy (template in older results; default: ours)",
    )
    args = parser.parse_args(argv)
    try:
        comparison = compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()), args.variant)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"A: {args.a}\nB: {args.b}\nvariant: {args.variant}\n")
    print(comparison_table(comparison))
    return 0


if __name__ == "__main__":
    sys.exit(main())
