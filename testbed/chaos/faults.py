"""Injecting each planned fault, and ending the ones that last a while.

Every fault goes through the test servers' in-process controls, a signal to a
child process, or the API as a user would act; none adds a route to a server.
A fault whose kind is still active (an outage during an outage) is skipped and
counted as such.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from testbed.chaos.api import ChangeFailed, class_path, lease_path, secret_path
from testbed.chaos.cluster import CLASS_NAME, HEKETI_LATENCY_MS, LEASE, SECRET_NAME, Cluster
from testbed.chaos.plan import Params, PlannedFault
from testbed.chaos.processes import SYSTEM_NAMESPACE
from testbed.chaos.workload import Claim, Workload

#: Heketi's answer when max_inflight_operations is reached (apps/glusterfs/app.go,
#: the operations throttle's http.Error text).
HEKETI_BUSY: Final = "Server busy. Retry operation later."
#: The holder a "lease lost" fault writes: a candidate that never renews.
INTRUDER: Final = "chaos-intruder"
#: Poll interval and limit of "grow the claim as soon as it is bound".
BOUND_POLL_S: Final = 0.1
BOUND_WAIT_S: Final = 60.0
#: Claims created at once by the "mid-burst" faults.
BURST_CLAIMS: Final = 5
#: Lease updates tried before "lease lost" gives up (each may meet a renewal).
LEASE_TRIES: Final = 5


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    name: str = field(compare=False)
    action: Callable[[], object] = field(compare=False)


class Timers:
    """Actions due later (fault ends, delayed user actions), run by the soak loop."""

    def __init__(self) -> None:
        self._heap: list[_Timer] = []
        self._seq = itertools.count()

    def after(self, seconds: float, name: str, action: Callable[[], object]) -> None:
        heapq.heappush(
            self._heap, _Timer(time.monotonic() + seconds, next(self._seq), name, action)
        )

    def run_due(self, *, everything: bool = False) -> None:
        """Run what is due (or, at the end of the run, everything still waiting)."""
        while self._heap and (everything or self._heap[0].due <= time.monotonic()):
            heapq.heappop(self._heap).action()

    def pending(self) -> list[str]:
        return sorted(t.name for t in self._heap)


class Injector:
    """Turns planned faults into actions on the cluster; counts what happened."""

    def __init__(self, *, cluster: Cluster, workload: Workload, timers: Timers) -> None:
        self.cluster, self.workload, self.timers = cluster, workload, timers
        self.injected: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.active: set[str] = set()
        self.last_fault_at = 0.0
        self._handlers: dict[str, Callable[[Params], bool]] = {
            "controller_kill_leader": self._kill_leader,
            "controller_kill_standby": self._kill_standby,
            "lease_lost": self._lease_lost,
            "leader_kill_mid_burst": self._leader_kill_mid_burst,
            "heketi_500": self._heketi_500,
            "heketi_drop_after_commit": self._heketi_drop,
            "heketi_429_storm": self._heketi_429,
            "heketi_latency_spike": self._heketi_latency,
            "heketi_restart": self._heketi_restart,
            "heketi_restart_mid_burst": self._heketi_restart_mid_burst,
            "heketi_outage": self._heketi_outage,
            "kube_watch_cut": self._watch_cut,
            "kube_410_gone": self._gone,
            "kube_409_conflict": self._conflict,
            "kube_500": self._kube_500,
            "kube_slow": self._kube_slow,
            "claim_delete_mid_provision": self._delete_mid_provision,
            "claim_expand_mid_provision": self._expand_mid_provision,
            "claim_delete_mid_expand": self._delete_mid_expand,
            "claim_expand_twice": self._expand_twice,
            "storageclass_delete_restore": self._class_gone,
            "secret_delete_restore": self._secret_gone,
            "node_plugin_kill": self._kill_node,
        }

    def inject(self, fault: PlannedFault, *, last_try: bool = True) -> bool:
        """Strike; False when it cannot now (counted as skipped on the last try)."""
        try:
            done = self._handlers[fault.kind](fault.params)
        except ChangeFailed:
            done = False
        if done:
            self.injected[fault.kind] += 1
            self.last_fault_at = time.monotonic()
        elif last_try:
            self.skipped[fault.kind] += 1
        return done

    def _for_a_while(self, kind: str, seconds: float, end: Callable[[], None]) -> None:
        """Mark `kind` active; `end` runs after `seconds` (or when the run ends)."""
        self.active.add(kind)

        def finish() -> None:
            try:
                end()
            except ChangeFailed:  # the API is failing right now: end it a little later
                self.timers.after(1.0, f"end {kind}", finish)
                return
            self.active.discard(kind)
            self.last_fault_at = time.monotonic()

        self.timers.after(seconds, f"end {kind}", finish)

    # -- controllers and node plugin -----------------------------------------------------

    def _kill_leader(self, params: Params) -> bool:
        leader = self.cluster.leader()
        return leader is not None and leader.kill(restart_after_s=float(params["restart_after_s"]))

    def _kill_standby(self, params: Params) -> bool:
        standby = self.cluster.standby()
        return standby is not None and standby.kill(
            restart_after_s=float(params["restart_after_s"])
        )

    def _kill_node(self, params: Params) -> bool:
        node = self.cluster.node
        return node is not None and node.kill(restart_after_s=float(params["restart_after_s"]))

    def _burst(self, tag: str) -> bool:
        """Claims created back to back, so that work is in flight when the fault strikes."""
        return any([self.workload.create(tag=tag) is not None for _ in range(BURST_CLAIMS)])

    def _leader_kill_mid_burst(self, params: Params) -> bool:
        if not self._burst("leader-killed-mid-burst"):
            return False
        self.timers.after(
            float(params["after_s"]), "kill the leader mid-burst", lambda: self._kill_leader(params)
        )
        return True

    def _heketi_restart_mid_burst(self, params: Params) -> bool:
        if not self._burst("heketi-restarted-mid-burst"):
            return False
        self.timers.after(
            float(params["after_s"]),
            "restart Heketi mid-burst",
            lambda: self._heketi_restart(params),
        )
        return True

    def _lease_lost(self, params: Params) -> bool:
        """Another holder writes the Lease, as after a partition; the leader must stop."""
        user, path = self.cluster.user, lease_path(SYSTEM_NAMESPACE, LEASE)
        assert user is not None
        for _ in range(LEASE_TRIES):
            lease = user.call("GET", path)
            if lease.status != 200:
                return False
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            spec = dict(lease.body.get("spec") or {})
            spec.update(
                holderIdentity=INTRUDER,
                acquireTime=now,
                renewTime=now,
                leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1,
            )
            answer = user.call("PUT", path, {**lease.body, "spec": spec}, conflicts=True)
            if answer.status == 200:
                return True
        return False

    # -- Heketi ------------------------------------------------------------------------------

    def _heketi_500(self, params: Params) -> bool:
        assert self.cluster.heketi is not None
        self.cluster.heketi.fail_next("any", count=int(params["count"]), status=500)
        return True

    def _heketi_drop(self, params: Params) -> bool:
        assert self.cluster.heketi is not None
        self.cluster.heketi.drop_next(str(params["op"]), after_commit=True)
        return True

    def _heketi_429(self, params: Params) -> bool:
        assert self.cluster.heketi is not None
        heketi = self.cluster.heketi
        heketi.fail_next("any", count=int(params["count"]), status=429, message=HEKETI_BUSY)
        return True

    def _heketi_latency(self, params: Params) -> bool:
        heketi = self.cluster.heketi
        if heketi is None or "heketi_latency_spike" in self.active:
            return False
        heketi.set_latency(int(float(params["latency_s"]) * 1000))
        end = lambda: heketi.set_latency(HEKETI_LATENCY_MS)  # noqa: E731
        self._for_a_while("heketi_latency_spike", float(params["for_s"]), end)
        return True

    def _heketi_restart(self, params: Params) -> bool:
        heketi = self.cluster.heketi
        if heketi is None or "heketi_outage" in self.active:
            return False  # a restart would end the outage early
        heketi.restart()
        return True

    def _heketi_outage(self, params: Params) -> bool:
        heketi = self.cluster.heketi
        if heketi is None or "heketi_outage" in self.active:
            return False
        heketi.pause()
        self._for_a_while("heketi_outage", float(params["for_s"]), heketi.resume)
        return True

    # -- Kubernetes API ----------------------------------------------------------------------

    def _watch_cut(self, params: Params) -> bool:
        self.cluster.kube.cut_watches()
        return True

    def _gone(self, params: Params) -> bool:
        self.cluster.kube.compact()
        self.cluster.kube.cut_watches()
        return True

    def _conflict(self, params: Params) -> bool:
        self.cluster.kube.fail_next(
            verb=str(params["verb"]),
            path_regex="/persistentvolume",
            count=int(params["count"]),
            status=409,
        )
        return True

    def _kube_500(self, params: Params) -> bool:
        self.cluster.kube.fail_next(
            path_regex="/(persistentvolume|leases)", count=int(params["count"]), status=500
        )
        return True

    def _kube_slow(self, params: Params) -> bool:
        if "kube_slow" in self.active:
            return False
        kube = self.cluster.kube
        kube.set_latency(float(params["latency_s"]))
        self._for_a_while("kube_slow", float(params["for_s"]), lambda: kube.set_latency(0))
        return True

    # -- claims, class and Secret ------------------------------------------------------------

    def _delete_mid_provision(self, params: Params) -> bool:
        claim = self.workload.create(tag="deleted-mid-provision")
        if claim is None:
            return False
        self.timers.after(
            float(params["after_s"]), f"delete {claim.name}", lambda: self.workload.delete(claim)
        )
        return True

    def _expand_mid_provision(self, params: Params) -> bool:
        claim = self.workload.create(tag="expanded-mid-provision")
        if claim is None:
            return False
        self.workload.expand(claim)  # refused by the API while the claim is pending
        self._grow_when_bound(claim, time.monotonic() + BOUND_WAIT_S)
        return True

    def _grow_when_bound(self, claim: Claim, give_up_at: float) -> None:
        def check() -> None:
            if self.workload.bound(claim) or time.monotonic() > give_up_at:
                self.workload.expand(claim)
            else:
                self._grow_when_bound(claim, give_up_at)

        self.timers.after(BOUND_POLL_S, f"grow {claim.name} once bound", check)

    def _bound_claim(self) -> Claim | None:
        bound = [c for c in self.workload.ledger.live() if self.workload.bound(c)]
        return self.workload.rng.choice(bound) if bound else None

    def _delete_mid_expand(self, params: Params) -> bool:
        claim = self._bound_claim()
        if claim is None or not self.workload.expand(claim):
            return False
        claim.tags.append("deleted-mid-expand")
        self.timers.after(
            float(params["after_s"]), f"delete {claim.name}", lambda: self.workload.delete(claim)
        )
        return True

    def _expand_twice(self, params: Params) -> bool:
        claim = self._bound_claim()
        if claim is None or not self.workload.expand(claim):
            return False
        claim.tags.append("expanded-twice")
        self.timers.after(
            float(params["after_s"]),
            f"grow {claim.name} again",
            lambda: self.workload.expand(claim),
        )
        return True

    def _class_gone(self, params: Params) -> bool:
        return self._gone_for_a_while(
            "storageclass_delete_restore", class_path(CLASS_NAME), "storageclass", params
        )

    def _secret_gone(self, params: Params) -> bool:
        return self._gone_for_a_while(
            "secret_delete_restore", secret_path(SYSTEM_NAMESPACE, SECRET_NAME), "secret", params
        )

    def _gone_for_a_while(self, kind: str, path: str, what: str, params: Params) -> bool:
        user = self.cluster.user
        if user is None or kind in self.active:
            return False
        if user.call("DELETE", path).status not in (200, 202):
            return False
        self._for_a_while(kind, float(params["for_s"]), lambda: self.cluster.restore(what))
        return True
