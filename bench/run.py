"""`python -m bench.run`: run the benchmarks, print the table, write bench/results.json."""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import burst, heketi_sizes, names, node, procs, report, scale

SCENARIOS = ("burst", "heketi_sizes", "scale", "scale_sizes", "node", "names")
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--only", default=",".join(SCENARIOS),
        help=f"comma list of scenarios to run (default: all of {', '.join(SCENARIOS)})",
    )  # fmt: skip
    parser.add_argument("--claims", type=int, default=burst.CLAIMS, help="claims per burst")
    parser.add_argument(
        "--pairs",
        type=int,
        default=scale.PAIRS,
        help="bound pairs that exist before the controller starts (scale)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=scale.IDLE_SECONDS,
        help="seconds the idle controller is watched (scale)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results file")
    parser.add_argument(
        "--keep-workdir",
        action="store_true",
        help="keep the logs of the controller and node plugin",
    )
    parser.add_argument(
        "--controller-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `glusterfs-provisioner controller` (repeatable)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the controller with py-spy during each wave and the idle period; "
        "collapsed stacks go to DIR/<phase>.txt (the sampling costs the controller CPU)",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}"
        )
    return args


def _scenarios(args: argparse.Namespace, workdir: Path) -> dict[str, Callable[[], dict[str, Any]]]:
    extra = tuple(args.controller_arg)
    return {
        "burst": lambda: burst.run(
            workdir=workdir, claims=args.claims, controller_args=extra, profile_dir=args.profile
        ),
        "scale": lambda: {"scale": scale.run(workdir=workdir, pairs=args.pairs,
                                             idle_seconds=args.idle_seconds,
                                             controller_args=extra, profile_dir=args.profile)},
        "heketi_sizes": lambda: heketi_sizes.run(workdir=workdir, controller_args=extra),
        "scale_sizes": lambda: scale.run_sizes(workdir=workdir, controller_args=extra),
        "node": lambda: {"node": node.run(workdir=workdir / "node")},
        "names": names.run,
    }  # fmt: skip


def run_all(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": procs.machine(),
        "errors": {},
    }
    started = time.monotonic()
    scenarios = _scenarios(args, workdir)
    for name in args.only.split(","):
        print(f"bench: running {name} ...", file=sys.stderr, flush=True)
        begun = time.monotonic()
        try:
            results.update(scenarios[name]())
        except Exception as err:  # one broken scenario must not hide the others' numbers
            traceback.print_exc()
            results["errors"][name] = f"{type(err).__name__}: {err}"
        print(f"bench: {name} took {time.monotonic() - begun:.1f} s", file=sys.stderr)
    results["duration_seconds"] = round(time.monotonic() - started, 1)
    results["targets"] = report.evaluate(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="glusterfs-provisioner-bench-"))
    try:
        results = run_all(args, workdir)
    finally:
        if args.keep_workdir:
            print(f"bench: logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    args.output.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    print(f"\nMachine: {report.machine_line(results['machine'])}")
    print(report.markdown(results["targets"]))
    writes = report.writes_table(results)
    if writes:
        print(f"\n{writes}")
    print(f"\nResults written to {args.output} ({results['duration_seconds']} s).")
    for name, error in results["errors"].items():
        print(f"bench: scenario {name} FAILED: {error}", file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
