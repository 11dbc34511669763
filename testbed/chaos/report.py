"""The soak's results (chaos/results.json) and the table `make chaos` prints."""

from __future__ import annotations

import datetime
import os
import subprocess
from collections import Counter
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from testbed.chaos.invariants import DESCRIPTIONS, Violation
from testbed.chaos.plan import CATALOGUE

#: Violations kept in full in the results (all are counted).
KEPT_VIOLATIONS = 200

if TYPE_CHECKING:
    from testbed.chaos.soak import Soak


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def results(soak: Soak) -> dict[str, Any]:
    assert soak.workload is not None and soak.injector is not None
    tally = soak.tally
    violations = sorted(tally.violations.values(), key=lambda v: (v.invariant, v.subject))
    return {
        "seed": soak.config.seed,
        "minutes": soak.config.minutes,
        "intensity": soak.config.intensity,
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "machine": {
            "nproc": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "settle_s": None if soak.settle_s is None else round(soak.settle_s, 1),
        "settle_limit_s": soak.config.settle_limit_s,
        "claims": _claims(soak),
        "faults": _faults(soak),
        "faults_injected": sum(soak.injector.injected.values()),
        "restarts": dict(sorted(tally.restarts.items())),
        "leader_changes": tally.leader_changes,
        "longest_leaderless_s": round(tally.longest_leaderless_s, 1),
        "invariants": _invariants(soak, violations),
        "violations_total": len(violations),
        "violations": [asdict(v) for v in violations[:KEPT_VIOLATIONS]],
        "plan": [{"at": f.at, "kind": f.kind, "params": f.params} for f in soak.plan],
    }


def _claims(soak: Soak) -> dict[str, Any]:
    assert soak.workload is not None
    ledger = soak.workload.ledger
    return {
        "created": ledger.created,
        "expanded": ledger.expanded,
        "expand_refused_while_pending": ledger.expand_refused,
        "deleted": ledger.deleted,
        "live_at_end": len(ledger.live()),
        "user_changes_failed": list(ledger.failed_changes),
        "user_retries": soak.cluster.user.retries if soak.cluster.user else 0,
    }


def _faults(soak: Soak) -> dict[str, Any]:
    assert soak.injector is not None
    injector = soak.injector
    return {
        kind.name: {
            "area": kind.area,
            "what": kind.what,
            "injected": injector.injected[kind.name],
            "skipped": injector.skipped[kind.name],
        }
        for kind in CATALOGUE
    }


def _invariants(soak: Soak, violations: list[Violation]) -> dict[str, Any]:
    found = Counter(v.invariant for v in violations)
    return {
        name: {"promise": text, "checks": soak.tally.checks[name], "violations": found[name]}
        for name, text in DESCRIPTIONS.items()
    }


def table(outcome: dict[str, Any]) -> str:
    """The printed summary of a run (the same figures as the JSON)."""
    settle = outcome["settle_s"]
    settled = f"settled {settle:g} s after the last fault" if settle is not None else "NOT settled"
    claims = outcome["claims"]
    lines = [
        f"chaos soak: seed {outcome['seed']}, {outcome['minutes']:g} min, "
        f"fault rates x{outcome['intensity']:g}, {settled} "
        f"(limit {outcome['settle_limit_s']:g} s)",
        "",
        f"claims    created {claims['created']}, expanded {claims['expanded']} "
        f"(+{claims['expand_refused_while_pending']} refused while pending), "
        f"deleted {claims['deleted']}, live at the end {claims['live_at_end']}",
        "",
        f"{'fault':30} {'area':10} {'injected':>8} {'skipped':>8}",
    ]
    for name, fault in outcome["faults"].items():
        lines.append(f"{name:30} {fault['area']:10} {fault['injected']:>8} {fault['skipped']:>8}")
    lines.append(f"{'total':30} {'':10} {outcome['faults_injected']:>8}")
    restarts = ", ".join(f"{why} {n}" for why, n in outcome["restarts"].items()) or "none"
    lines += [
        "",
        f"restarts  {sum(outcome['restarts'].values())} ({restarts})",
        f"leaders   {outcome['leader_changes']} changes; longest without a leader "
        f"{outcome['longest_leaderless_s']:g} s",
        "",
        f"{'invariant':22} {'checks':>7} {'violations':>10}  promise",
    ]
    for name, inv in outcome["invariants"].items():
        lines.append(f"{name:22} {inv['checks']:>7} {inv['violations']:>10}  {inv['promise']}")
    lines.append("")
    for violation in outcome["violations"][:20]:
        lines.append(
            f"VIOLATION {violation['invariant']} {violation['subject']}: {violation['detail']}"
        )
    total = outcome["violations_total"]
    lines.append(f"result: {'PASS' if total == 0 else 'FAIL'} ({total} violations)")
    return "\n".join(lines)
