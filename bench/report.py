"""Each figure next to its target (and its ideal, where one exists), as a table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: Burst targets are relative: at most this many times the ideal (Heketi-bound) time.
BURST_SLACK = 1.05
#: "0 GETs per claim beyond the watch cache": a one-off read (the Heketi Secret,
#: fetched once per burst) is allowed; anything that grows with the claims is not.
ZERO_PER_CLAIM = 0.01


@dataclass(frozen=True)
class Target:
    """One row: the figure at dotted `key` in the results, compared with `bound`."""

    key: str
    label: str
    op: str  # "<=", "<", ">=" or "==", or "" for a figure shown without a target
    bound: float | None = None
    #: Dotted key of the ideal value; the bound is then BURST_SLACK times the ideal.
    ideal_key: str | None = None


TARGETS: tuple[Target, ...] = (
    Target("burst.seconds", "burst: {burst.claims} claims bound, Heketi 200 ms (s)", "<=",
           ideal_key="burst.ideal_seconds"),
    Target("burst.http_429", "burst: Heketi 429 responses", "==", 0),
    Target("burst.api_writes_per_pvc", "burst: API writes per claim", "<=", 4),
    Target("burst.api_gets_per_pvc", "burst: API GETs per claim", "<=", ZERO_PER_CLAIM),
    Target("burst.cpu_ms_per_pvc", "burst: controller CPU per claim (ms)", "<=", 3),
    Target("burst.heketi_requests_per_pvc", "burst: Heketi requests per claim", ""),
    Target("burst.heketi_lists_per_pvc", "burst: Heketi volume lists per claim", "==", 0),
    Target("burst.kb_from_heketi_per_pvc", "burst: kB read from Heketi per claim", ""),
    Target("burst_instant.claims_per_second", "burst, Heketi 0 ms: claims bound per s", ">=", 50),
    Target("burst_instant.http_429", "burst, Heketi 0 ms: Heketi 429 responses", "==", 0),
    Target("burst_instant.api_writes_per_pvc", "burst, Heketi 0 ms: API writes per claim", "<=", 4),
    Target("burst_instant.cpu_ms_per_pvc", "burst, Heketi 0 ms: controller CPU per claim (ms)",
           "<=", 3),
    Target("burst_naive.bound", "naive client (1 worker): claims bound in 1.5x our time", ""),
    *(
        row
        for n, label in (("v0", "0"), ("v1000", "1,000"), ("v10000", "10,000"))
        for row in (
            Target(f"heketi_sizes.{n}.cpu_ms_per_pvc",
                   f"Heketi holding {label} volumes: controller CPU per claim (ms)", ""),
            Target(f"heketi_sizes.{n}.kb_from_heketi_per_pvc",
                   f"Heketi holding {label} volumes: kB read from Heketi per claim", ""),
            Target(f"heketi_sizes.{n}.heketi_requests_per_pvc",
                   f"Heketi holding {label} volumes: Heketi requests per claim", ""),
            Target(f"heketi_sizes.{n}.heketi_lists_per_pvc",
                   f"Heketi holding {label} volumes: Heketi volume lists per claim", "==", 0),
        )
    ),
    Target("heketi_sizes.cpu_ms_per_pvc_ratio",
           "CPU per claim, Heketi holding 10,000 ÷ 0 volumes", "<=", 1.2),
    Target("heketi_sizes.kb_from_heketi_per_pvc_ratio",
           "kB read from Heketi per claim, Heketi holding 10,000 ÷ 0 volumes", "<=", 1.2),
    Target("heketi_sizes.heketi_requests_per_pvc_ratio",
           "Heketi requests per claim, Heketi holding 10,000 ÷ 0 volumes", "<=", 1.2),
    Target("scale.ready_seconds", "scale: ready at {scale.pairs} pairs (s)", "<=", 10),
    Target("scale.rss_mb", "scale: resident memory after sync (MB)", "<=", 250),
    Target("scale.idle_cpu_percent", "scale: CPU while idle {scale.idle_seconds} s (%)", "<=", 1),
    Target("scale.provision.seconds", "scale: 100 more claims bound, Heketi 200 ms (s)", "<=",
           ideal_key="scale.provision.ideal_seconds"),
    Target("scale.provision.http_429", "scale: Heketi 429 responses", "==", 0),
    Target("scale.provision.api_writes_per_pvc", "scale: API writes per claim", "<=", 4),
    Target("scale.provision.api_gets_per_pvc", "scale: API GETs per claim", "<=", ZERO_PER_CLAIM),
    Target("scale.provision.cpu_ms_per_pvc", "scale: controller CPU per claim (ms)", "<=", 3),
    *(
        row
        for n, label in (("p1000", "1,000"), ("p10000", "10,000"), ("p50000", "50,000"))
        for row in (
            Target(f"scale_sizes.{n}.ready_seconds", f"start-up: ready at {label} pairs (s)",
                   *(("<=", 10) if n == "p50000" else ("",))),
            Target(f"scale_sizes.{n}.rss_mb", f"start-up: resident memory at {label} pairs (MB)",
                   *(("<=", 600) if n == "p50000" else ("",))),
            Target(f"scale_sizes.{n}.idle_cpu_percent",
                   f"start-up: CPU while idle at {label} pairs (%)", "<=", 1),
        )
    ),
    Target("node.stage_ms", "node: NodeStageVolume (ms)", ""),
    Target("node.publish_p50_ms", "node: NodePublishVolume p50, {node.pods} pods (ms)", "<=", 5),
    Target("node.publish_p95_ms", "node: NodePublishVolume p95, {node.pods} pods (ms)", ""),
    Target("node.fuse_clients", "node: glusterfs client processes for the volume", "==", 1),
    *(
        row
        for n, label in (("n100", "100"), ("n1000", "1,000"), ("n10000", "10,000"))
        for row in (
            Target(f"names.{n}.cold_requests", f"name lookup, cold, {label} volumes: requests", ""),
            Target(f"names.{n}.cold_seconds", f"name lookup, cold, {label} volumes (s)",
                   *({"n1000": ("<=", 0.5), "n10000": ("<=", 3)}.get(n, ("",)))),
            Target(f"names.{n}.cold_cpu_seconds",
                   f"name lookup, cold, {label} volumes: client CPU (s)", ""),
            Target(f"names.{n}.warm_requests",
                   f"name lookup, warm, {label} volumes + 1 new: requests", "==", 2),
            Target(f"names.{n}.warm_seconds", f"name lookup, warm, {label} volumes + 1 new (s)",
                   ""),
        )
    ),
)  # fmt: skip


def lookup(results: dict[str, Any], key: str) -> Any:
    """The value at dotted `key`, or None when a part is missing."""
    value: Any = results
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _label(template: str, results: dict[str, Any]) -> str:
    """`template` with each `{dotted.key}` replaced by that figure (`?` when missing)."""

    def figure(match: re.Match[str]) -> str:
        value = lookup(results, match.group(1))
        if isinstance(value, int) and value >= 10_000:
            return f"{value:,}"
        return "?" if value is None else _number(value)

    return re.sub(r"\{([a-z_.]+)\}", figure, template)


def _met(op: str, value: float, bound: float) -> bool:
    if op == "<=":
        return value <= bound
    if op == ">=":
        return value >= bound
    if op == "<":
        return value < bound
    return value == bound


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target whose scenario ran."""
    rows = []
    for target in TARGETS:
        value = lookup(results, target.key)
        if value is None:
            continue
        ideal = lookup(results, target.ideal_key) if target.ideal_key else None
        bound = BURST_SLACK * ideal if ideal is not None else target.bound
        row: dict[str, Any] = {
            "key": target.key,
            "figure": _label(target.label, results),
            "measured": value,
            "target": f"{target.op} {_number(bound)}" if target.op else "—",
        }
        if ideal is not None:
            row["ideal"] = ideal
            row["ratio_to_ideal"] = round(value / ideal, 2) if ideal else None
        if target.op and bound is not None:
            row["met"] = _met(target.op, value, bound)
        rows.append(row)
    return rows


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value < 100 else f"{value:.0f}"
    return str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (readable on a terminal too)."""
    lines = [
        "| Figure | Measured | Target | Ideal | Measured ÷ ideal | Met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "—"}[row.get("met")]
        ideal = _number(row["ideal"]) if "ideal" in row else "—"
        ratio = _number(row["ratio_to_ideal"]) if row.get("ratio_to_ideal") is not None else "—"
        lines.append(
            f"| {row['figure']} | {_number(row['measured'])} | {row['target']} | {ideal} "
            f"| {ratio} | {met} |"
        )
    return "\n".join(lines)


def writes_table(results: dict[str, Any]) -> str:
    """API writes per claim by verb and object, one column per wave that ran."""
    waves = [
        (key, label)
        for key, label in (("burst", "burst"), ("burst_instant", "burst, 0 ms"),
                           ("scale.provision", "scale"))
        if lookup(results, f"{key}.api_writes_per_pvc_by_verb_and_object") is not None
    ]  # fmt: skip
    if not waves:
        return ""
    tables = [lookup(results, f"{key}.api_writes_per_pvc_by_verb_and_object") for key, _ in waves]
    rows = sorted({row for table in tables for row in table})
    lines = [
        "| API writes per claim | " + " | ".join(label for _, label in waves) + " |",
        "|---|" + "---:|" * len(waves),
    ]
    lines += [
        f"| {row} | " + " | ".join(_number(t.get(row, 0)) for t in tables) + " |" for row in rows
    ]
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB RAM, "
        f"{machine['os']}, kernel {machine['kernel']}, Python {machine['python']}, "
        f"{machine['glusterfs']}; load average at start {machine['load_average_at_start']}"
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report [results.json]`: the table of a finished run, in Markdown."""
    import json
    import sys
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).resolve().parent / "results.json"
    results = json.loads(path.read_text())
    print(f"Machine: {machine_line(results['machine'])}\n")
    print(markdown(evaluate(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
