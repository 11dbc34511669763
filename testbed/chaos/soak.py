"""The soak: run the plan against the cluster, check invariants, let it settle, report."""

from __future__ import annotations

import heapq
import itertools
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from testbed.chaos import report
from testbed.chaos.cluster import Cluster
from testbed.chaos.faults import INTRUDER, Injector, Timers
from testbed.chaos.final import FINAL
from testbed.chaos.invariants import CONTINUOUS, Snapshot, Violation
from testbed.chaos.leaks import Scanner
from testbed.chaos.plan import PlannedFault, make_plan
from testbed.chaos.workload import Ledger, Workload

#: The loop's tick: faults and delayed actions start within this of their time.
TICK_S: Final = 0.2
#: A fault that cannot strike now is tried this many times, this many seconds apart.
FAULT_TRIES: Final = 5
RETRY_AFTER_S: Final = 2.0
#: Seconds between checks of the invariants that hold at every moment.
CHECK_EVERY_S: Final = 3.0
#: Seconds between searches of every object and Event for the key (they grow).
OBJECT_SCAN_EVERY_S: Final = 15.0
#: The stated recovery bound: after the last fault, everything settles within this.
SETTLE_LIMIT_S: Final = 180.0


@dataclass(frozen=True)
class SoakConfig:
    minutes: float
    seed: int
    settle_limit_s: float = SETTLE_LIMIT_S
    #: Multiplies every fault rate.
    intensity: float = 1.0
    keep_workdir: bool = False
    progress: Callable[[str], None] = print


@dataclass
class Tally:
    """Everything counted during the run."""

    checks: Counter[str] = field(default_factory=Counter)
    violations: dict[tuple[str, str], Violation] = field(default_factory=dict)
    restarts: Counter[str] = field(default_factory=Counter)
    leader_changes: int = 0
    longest_leaderless_s: float = 0.0
    _holder: str = ""
    _leaderless_since: float | None = None

    def record(self, names: Iterable[str], found: list[Violation]) -> None:
        for name in names:
            self.checks[name] += 1
        for violation in found:
            self.violations.setdefault((violation.invariant, violation.subject), violation)

    def track_leader(self, holder: str, has_leader: bool) -> None:
        now = time.monotonic()
        if holder and holder != INTRUDER and holder != self._holder:
            if self._holder:
                self.leader_changes += 1
            self._holder = holder
        if has_leader:
            if self._leaderless_since is not None:
                gap = now - self._leaderless_since
                self.longest_leaderless_s = max(self.longest_leaderless_s, gap)
            self._leaderless_since = None
        elif self._leaderless_since is None:
            self._leaderless_since = now


class Soak:
    def __init__(self, config: SoakConfig, workdir: Path) -> None:
        self.config = config
        self.cluster = Cluster(workdir=workdir)
        self.plan = make_plan(
            seed=config.seed, duration_s=config.minutes * 60, intensity=config.intensity
        )
        self.timers = Timers()
        self.tally = Tally()
        self.scanner: Scanner | None = None
        self.workload: Workload | None = None
        self.injector: Injector | None = None
        self.settle_s: float | None = None
        self._next_check = self._next_scan = 0.0

    def run(self) -> None:
        say = self.config.progress
        self.cluster.start()
        assert self.cluster.user is not None
        self.workload = Workload(
            user=self.cluster.user,
            kube=self.cluster.kube,
            rng=random.Random(f"workload-{self.config.seed}"),  # noqa: S311 - seeded replay
        )
        self.injector = Injector(cluster=self.cluster, workload=self.workload, timers=self.timers)
        logs = [child.log_path for child in self.cluster.children]
        self.scanner = Scanner(key=self.cluster.heketi_key, logs=logs)
        minutes, planned = self.config.minutes, len(self.plan)
        say(f"chaos: seed {self.config.seed}, {minutes:g} min, {planned} faults planned")
        self._chaos()
        say("chaos: faults over; waiting for the system to settle")
        self._end_faults()
        self._settle()

    # -- the chaos phase ---------------------------------------------------------------------

    def _chaos(self) -> None:
        assert self.workload is not None and self.injector is not None
        started = time.monotonic()
        end = started + self.config.minutes * 60
        order = itertools.count()
        pending = [(fault.at, next(order), 1, fault) for fault in self.plan]  # sorted: a heap
        next_tick = started
        while time.monotonic() < end:
            now = time.monotonic()
            while pending and started + pending[0][0] <= now:
                _, _, attempt, fault = heapq.heappop(pending)
                if not self._inject(fault, now - started, attempt):
                    retry = (now - started + RETRY_AFTER_S, next(order), attempt + 1, fault)
                    heapq.heappush(pending, retry)
            self.timers.run_due()
            if now >= next_tick:
                self.workload.tick()
                next_tick += 1.0
            self._housekeeping(continuous=True)
            time.sleep(TICK_S)

    def _inject(self, fault: PlannedFault, elapsed: float, attempt: int) -> bool:
        """Strike; True when done or given up (a fault that cannot strike now, e.g.
        "kill the standby" while none runs, is tried again a little later)."""
        assert self.injector is not None
        last_try = attempt >= FAULT_TRIES
        done = self.injector.inject(fault, last_try=last_try)
        if done or last_try:
            note = "" if done else " (skipped)"
            self.config.progress(f"  {elapsed:7.1f}s  {fault.kind}{note}")
        return done or last_try

    def _housekeeping(self, *, continuous: bool) -> None:
        for role, why in self.cluster.supervise():
            self.tally.restarts[f"{role.split('-')[0]} {why}"] += 1
        lease = self.cluster.lease() or {}
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
        self.tally.track_leader(holder, self.cluster.leader() is not None)
        now = time.monotonic()
        if continuous and now >= self._next_check:
            self._next_check = now + CHECK_EVERY_S
            self._check(CONTINUOUS)
            self._scan(objects=now >= self._next_scan)
            if now >= self._next_scan:
                self._next_scan = now + OBJECT_SCAN_EVERY_S

    def _check(
        self, checks: Iterable[Callable[[Snapshot, Ledger], list[Violation]]]
    ) -> list[Violation]:
        assert self.workload is not None
        snap = Snapshot.take(self.cluster)
        found: list[Violation] = []
        names = set()
        for check in checks:
            result = check(snap, self.workload.ledger)
            found.extend(result)
            names.add(_invariant_of(check))
        self.tally.record(names, found)
        return found

    def _scan(self, *, objects: bool) -> list[Violation]:
        assert self.scanner is not None
        found = self.scanner.scan_logs()
        names = ["no_secret_leak", "no_crash"]
        if objects:
            found += self.scanner.scan_objects(self.cluster.kube)
        self.tally.record(names, found)
        return found

    # -- the end ---------------------------------------------------------------------------------

    def _end_faults(self) -> None:
        """End what still lasts (outages, slow answers, a missing class) and due actions."""
        self.timers.run_due(everything=True)
        self.cluster.kube.clear_faults()
        self.cluster.kube.set_latency(0)

    def _settle(self) -> None:
        """Poll the final invariants until they all hold; the time it took is the settle time."""
        assert self.injector is not None
        limit = self.config.settle_limit_s
        # faults run to the end of the run; those still lasting were just ended
        since = self.injector.last_fault_at or time.monotonic()
        deadline = since + limit
        found: list[Violation] = []
        while time.monotonic() < deadline:
            self._housekeeping(continuous=False)
            found = self._settled_problems()
            if not found:
                self.settle_s = time.monotonic() - since
                break
            time.sleep(1.0)
        self._final_checks()
        late = []
        if self.settle_s is None:
            detail = f"not settled {limit:g}s after the last fault: " + "; ".join(
                f"{v.invariant} {v.subject}: {v.detail}" for v in found[:5]
            )
            late = [Violation("bounded_recovery", "run", detail)]
        self.tally.record(["bounded_recovery"], late)

    def _settled_problems(self) -> list[Violation]:
        snap = Snapshot.take(self.cluster)
        assert self.workload is not None and self.cluster.heketi is not None
        found = [v for check in FINAL for v in check(snap, self.workload.ledger)]
        if self.cluster.heketi.inflight():
            found.append(Violation("bounded_recovery", "heketi", "operations still running"))
        if self.cluster.leader() is None or not all(c.running() for c in self.cluster.children):
            found.append(Violation("bounded_recovery", "processes", "not all running and led"))
        return found

    def _final_checks(self) -> None:
        """The final invariants once, counted; then every log and object searched."""
        self._check(FINAL)
        self._scan(objects=True)
        serving = self.cluster.node_serving()
        problem = [] if serving else [Violation("node_plugin_serving", "node", "no answer")]
        self.tally.record(["node_plugin_serving"], problem)


def _invariant_of(check: Callable[..., Any]) -> str:
    name = check.__name__
    return {
        "capacity_ordered": "capacity",
        "capacity_equal": "capacity",
        "bound_to_its_pv": "claims_bound",
        "one_pv_per_claim": "claims_bound",
    }.get(name, name)


def run_soak(config: SoakConfig) -> dict[str, Any]:
    """Run one soak; returns the results (see report.results)."""
    workdir = Path(tempfile.mkdtemp(prefix="gp-chaos-"))
    soak = Soak(config, workdir)
    try:
        soak.run()
    except BaseException:
        config.progress(f"chaos: the soak itself failed; logs kept in {workdir}")
        raise
    finally:
        soak.cluster.stop()
    outcome = report.results(soak)
    keep = config.keep_workdir or bool(outcome["violations_total"])
    outcome["workdir"] = str(workdir) if keep else None
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return outcome
