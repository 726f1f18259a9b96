"""The peerbench summary: each runner's time as a ratio to ninja's, per shape and
concurrency, from the ``results.json`` that ``bench/peerbench/bench.py`` writes.

Ratios are the medians of per-round ratios (each runner's run over ninja's run of
the same round: see bench/peerbench/README.md); ``noop`` (one ``true`` step, the
runner's whole start-up) is shown in milliseconds instead, with planrun over doit.

    python bench/peer_ratios.py /tmp/peerbench/results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: Columns, in this order, when the results have them.
PEERS = ("planrun", "doit", "minidag", "make", "xargs", "parallel", "snakemake")


def _ratio(cell: dict[str, Any], runner: str) -> str:
    value = cell.get(runner, {}).get("ratio_ninja")
    return "—" if value is None else f"{value:.2f}x"


def _ms(cell: dict[str, Any], runner: str) -> str:
    value = cell.get(runner, {}).get("median")
    return "—" if value is None else f"{value * 1000:.0f}"


def ratio_table(timing: dict[str, Any]) -> list[str]:
    """Markdown lines: one row per (shape, j) but noop, ratios to ninja."""
    cells = [c for s in timing.values() for c in s["cells"].values()]
    runners = [p for p in PEERS if any(p in c for c in cells)]
    lines = [
        "| shape | j | ninja s | " + " | ".join(f"{r} / ninja" for r in runners) + " |",
        "|---|--:|--:|" + "--:|" * len(runners),
    ]
    for shape, result in timing.items():
        if shape == "noop":
            continue
        for j, cell in sorted(result["cells"].items(), key=lambda kv: -int(kv[0])):
            ninja = cell.get("ninja", {}).get("median")
            base = "—" if ninja is None else f"{ninja:.3f}"
            ratios = " | ".join(_ratio(cell, r) for r in runners)
            lines.append(f"| {shape} ({result['meta']['size']}) | {j} | {base} | {ratios} |")
    return lines


def startup_table(timing: dict[str, Any]) -> list[str]:
    """Markdown lines: the noop shape's median whole-process time per runner."""
    if "noop" not in timing:
        return []
    (cell,) = timing["noop"]["cells"].values()
    runners = ["ninja", *[p for p in PEERS if p in cell]]
    lines = [
        "| start-up (one `true` step, whole process) | " + " | ".join(runners) + " |",
        "|---|" + "--:|" * len(runners),
        "| median ms | " + " | ".join(_ms(cell, r) for r in runners) + " |",
    ]
    planrun, doit = (cell.get(r, {}).get("median") for r in ("planrun", "doit"))
    if planrun and doit:
        lines.append(f"\nplanrun / doit start-up: {planrun / doit:.2f}x")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="peerbench's results.json")
    args = parser.parse_args()
    timing = json.loads(args.results.read_text())["timing"]
    print("\n".join(["", *ratio_table(timing), "", *startup_table(timing)]))


if __name__ == "__main__":
    main()
