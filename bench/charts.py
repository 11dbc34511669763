"""PNG charts of a benchmark run, from its results.json (`make bench` draws them).

`python -m bench.charts [results.json] [--baseline before.json] [--output DIR]`:

- `burst.png` — claims bound over time in the 500-claim burst: ours, the naive client
  (one claim at a time) and the ideal (Heketi's 8 slots always busy);
- `scale.png` — seconds until ready and resident memory against the number of pairs;
- `cpu_per_claim.png` — the controller's CPU per claim in each wave, before (the
  baseline file: a results.json of the code before a change) and after.

A chart whose figures the run does not hold is not drawn. matplotlib is a bench-only
dependency (the `bench` extra), never one of the provisioner.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bench.report import lookup

BENCH = Path(__file__).resolve().parent
DEFAULT_RESULTS = BENCH / "results.json"
DEFAULT_BASELINE = BENCH / "baseline.json"
DEFAULT_OUTPUT = BENCH.parent / "docs" / "images"
#: The waves whose CPU per claim is compared: (dotted key, label).
CPU_WAVES: tuple[tuple[str, str], ...] = (
    ("burst.cpu_ms_per_pvc", "burst,\nHeketi 200 ms"),
    ("burst_instant.cpu_ms_per_pvc", "burst,\nHeketi 0 ms"),
    ("scale.provision.cpu_ms_per_pvc", "100 claims at\n10,000 pairs"),
    ("heketi_sizes.v0.cpu_ms_per_pvc", "Heketi holding\n0 volumes"),
    ("heketi_sizes.v1000.cpu_ms_per_pvc", "Heketi holding\n1,000 volumes"),
    ("heketi_sizes.v10000.cpu_ms_per_pvc", "Heketi holding\n10,000 volumes"),
)
DPI = 100


def burst_chart(results: dict[str, Any]) -> Figure | None:
    ours = lookup(results, "burst.bound_over_time")
    if not ours:
        return None
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(*zip(*ours, strict=True), label="glusterfs-provisioner (16 workers)")
    naive = lookup(results, "burst_naive.bound_over_time")
    if naive:
        axes.plot(*zip(*naive, strict=True), label="naive client (one claim at a time)")
    ideal = lookup(results, "burst.ideal_seconds")
    claims = lookup(results, "burst.claims")
    if ideal and claims:
        axes.plot(
            [0, ideal], [0, claims], linestyle="--", color="grey", label="ideal (Heketi-bound)"
        )
    axes.set(xlabel="seconds since the claims were created", ylabel="claims Bound")
    axes.set_title(f"{claims} claims at once, Heketi 200 ms per create, 8 at a time")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    return figure


def scale_chart(results: dict[str, Any]) -> Figure | None:
    rows = sorted((lookup(results, "scale_sizes") or {}).values(), key=lambda row: row["pairs"])
    if not rows:
        return None
    pairs = [row["pairs"] for row in rows]
    figure, (ready, memory) = plt.subplots(1, 2, figsize=(9, 3.8))
    ready.plot(pairs, [row["ready_seconds"] for row in rows], marker="o")
    ready.set(xlabel="bound PVC/PV pairs", ylabel="seconds", title="start → ready")
    memory.plot(pairs, [row["rss_mb"] for row in rows], marker="o", color="tab:orange")
    memory.set(xlabel="bound PVC/PV pairs", ylabel="MiB", title="resident memory after sync")
    for axes in (ready, memory):
        axes.grid(alpha=0.3)
        axes.set_ylim(bottom=0)
    figure.tight_layout()
    return figure


def cpu_chart(results: dict[str, Any], baseline: dict[str, Any] | None) -> Figure | None:
    waves = [(key, label) for key, label in CPU_WAVES if lookup(results, key) is not None]
    if not waves:
        return None
    figure, axes = plt.subplots(figsize=(9, 4))
    width = 0.4
    places = range(len(waves))
    if baseline is not None:
        before = [lookup(baseline, key) or math.nan for key, _ in waves]
        axes.bar([p - width / 2 for p in places], before, width, label="before", color="grey")
    after = [lookup(results, key) for key, _ in waves]
    shift = width / 2 if baseline is not None else 0.0
    axes.bar([p + shift for p in places], after, width, label="after", color="tab:blue")
    axes.set_xticks(list(places), [label for _, label in waves], fontsize=8)
    axes.set(ylabel="controller CPU per claim (ms)")
    axes.legend()
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def write(
    results: dict[str, Any], output: Path, *, baseline: dict[str, Any] | None = None
) -> list[Path]:
    """Draw every chart the results allow into `output`; the files written."""
    output.mkdir(parents=True, exist_ok=True)
    charts = {
        "burst.png": burst_chart(results),
        "scale.png": scale_chart(results),
        "cpu_per_claim.png": cpu_chart(results, baseline),
    }
    written = []
    for name, figure in charts.items():
        if figure is None:
            continue
        path = output / name
        figure.savefig(path, dpi=DPI)
        plt.close(figure)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.charts", description=__doc__)
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    baseline = json.loads(args.baseline.read_text()) if args.baseline.exists() else None
    for path in write(results, args.output, baseline=baseline):
        print(f"bench: chart {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
