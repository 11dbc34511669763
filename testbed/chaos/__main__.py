"""`python -m testbed.chaos`: run the soak, print the table, write chaos/results.json."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from testbed.chaos import report
from testbed.chaos.soak import SETTLE_LIMIT_S, SoakConfig, run_soak

REPO: Final = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT: Final = REPO / "chaos" / "results.json"
DEFAULT_MINUTES: Final = 5.0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m testbed.chaos", description=__doc__)
    parser.add_argument(
        "--minutes",
        type=_positive,
        default=_positive(os.environ.get("CHAOS_MINUTES") or str(DEFAULT_MINUTES)),
        help=f"how long faults strike (env CHAOS_MINUTES; default {DEFAULT_MINUTES:g})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6)),
        help="seed of the fault plan and the workload; replay a run with its seed "
        "(env CHAOS_SEED; default: random, printed)",
    )
    parser.add_argument(
        "--settle-limit",
        type=_positive,
        default=SETTLE_LIMIT_S,
        help=f"seconds the system may take to settle after the last fault "
        f"(default {SETTLE_LIMIT_S:g})",
    )
    parser.add_argument(
        "--intensity",
        type=_positive,
        default=1.0,
        help="multiply every fault rate (default 1; the table in docs/reliability.md lists them)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results file")
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep the process logs (kept anyway on failure)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not print each fault")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = SoakConfig(
        minutes=args.minutes,
        seed=args.seed,
        settle_limit_s=args.settle_limit,
        intensity=args.intensity,
        keep_workdir=args.keep_workdir,
        progress=(lambda _: None) if args.quiet else lambda line: print(line, flush=True),
    )
    outcome = run_soak(config)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(outcome, indent=2) + "\n")
    print(report.table(outcome))
    print(f"results: {args.output}")
    if outcome["workdir"]:
        print(f"process logs: {outcome['workdir']}")
    return 0 if outcome["violations_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
