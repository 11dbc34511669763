"""Leader election on a coordination.k8s.io/v1 Lease (client-go's algorithm).

Why not `kubernetes.leaderelection`: its `LeaderElection.run()` blocks in
uninterruptible sleeps with no way to stop it, never releases the lease (a
restarted or terminated leader makes everyone wait a whole lease duration), calls
its stop callback only after the renew loop gives up, and decodes the Lease into
model objects. This elector can be stopped at any moment, releases the lease on
a clean shutdown (SIGTERM), reports "leadership known" for /readyz, and tells the
controller the moment renewal fails past the renew deadline.

Safety: a candidate takes the lease only when it has watched the same record
unchanged for a whole lease duration on its own monotonic clock (no trust in
other machines' wall clocks); a leader stops acting once it could not renew for
`renew_deadline` (< lease duration), so two leaders never act at once.
"""

import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from provisioner.kube.api import KubeApi, KubeError, KubeNotFound, Obj, path_for
from provisioner.log import get_logger

log = get_logger("leader")

#: Defaults match kube-controller-manager and the CSI sidecars.
DEFAULT_LEASE_DURATION: Final = 15.0
DEFAULT_RENEW_DEADLINE: Final = 10.0
DEFAULT_RETRY_PERIOD: Final = 2.0


@dataclass(frozen=True)
class LeaderElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = DEFAULT_LEASE_DURATION
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > retry period > 0 "
                f"(got {self.lease_duration:g}s > {self.renew_deadline:g}s > "
                f"{self.retry_period:g}s)"
            )


def _now_micro() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaign for the lease in a thread; call `stop()` to end (and release) it."""

    def __init__(
        self,
        api: KubeApi,
        config: LeaderElectionConfig,
        *,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._config = config
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._clock = clock
        self._path = path_for(
            group="coordination.k8s.io", plural="leases", namespace=config.namespace
        )
        self._stop = threading.Event()
        self._leading = threading.Event()
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0
        self._thread: threading.Thread | None = None
        self.leader_known = False
        self.holder = ""

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True, timeout: float = 10.0) -> None:
        """Stop campaigning; a leader stops leading and (by default) releases the lease."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._leading.is_set():
            self._step_down()
            if release:
                self._release()

    def run(self) -> None:
        while not self._stop.is_set():
            if self._try_acquire_or_renew():
                self._become_leader()
                self._renew_until_lost()
                if self._stop.is_set():
                    return
                self._step_down()
            self._stop.wait(self._config.retry_period)

    def _become_leader(self) -> None:
        log.info("became leader", lease=self._config.name, identity=self._config.identity)
        self._leading.set()
        self._on_started()

    def _step_down(self) -> None:
        if self._leading.is_set():
            self._leading.clear()
            log.warning("stopped leading", lease=self._config.name)
            self._on_stopped()

    def _renew_until_lost(self) -> None:
        last_renew = self._clock()
        while not self._stop.wait(self._config.retry_period):
            if self._try_acquire_or_renew():
                last_renew = self._clock()
            elif self.holder not in ("", self._config.identity):
                log.warning(
                    "another candidate holds the lease", lease=self._config.name, holder=self.holder
                )
                return
            elif self._clock() - last_renew >= self._config.renew_deadline:
                log.warning(
                    "could not renew the lease within the renew deadline",
                    lease=self._config.name,
                    renew_deadline=self._config.renew_deadline,
                )
                return

    def _try_acquire_or_renew(self) -> bool:
        try:
            lease = self._api.get(f"{self._path}/{self._config.name}")
        except KubeNotFound:
            return self._create()
        except KubeError as exc:
            log.warning("reading the lease failed", error=str(exc))
            return False
        spec: dict[str, Any] = lease.get("spec") or {}
        self._observe(spec)
        holder = str(spec.get("holderIdentity") or "")
        if holder and holder != self._config.identity and not self._expired(spec):
            return False
        return self._update(lease, spec, holder)

    def _observe(self, spec: dict[str, Any]) -> None:
        record = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()
        self.holder = record[0]
        self.leader_known = True

    def _expired(self, spec: dict[str, Any]) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self._config.lease_duration)
        return self._observed_at + duration <= self._clock()

    def _create(self) -> bool:
        now = _now_micro()
        body: Obj = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._config.name, "namespace": self._config.namespace},
            "spec": self._spec(acquire_time=now, renew_time=now, transitions=0),
        }
        try:
            self._api.create(self._path, body)
        except KubeError as exc:
            log.info("lease creation lost or failed", error=str(exc))
            return False
        self._mark_ours()
        return True

    def _update(self, lease: Obj, spec: dict[str, Any], holder: str) -> bool:
        now = _now_micro()
        ours = holder == self._config.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        acquire = str(spec.get("acquireTime") or now) if ours else now
        body = dict(lease)
        body["spec"] = self._spec(acquire_time=acquire, renew_time=now, transitions=transitions)
        try:
            self._api.update(f"{self._path}/{self._config.name}", body)
        except KubeError as exc:
            log.info("lease update lost or failed", error=str(exc))
            return False
        self._mark_ours()
        return True

    def _mark_ours(self) -> None:
        self.holder = self._config.identity
        self.leader_known = True

    def _spec(self, *, acquire_time: str, renew_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self._config.identity,
            "leaseDurationSeconds": max(1, round(self._config.lease_duration)),
            "acquireTime": acquire_time,
            "renewTime": renew_time,
            "leaseTransitions": transitions,
        }

    def _release(self) -> None:
        """Hand the lease back so a successor need not wait out the lease duration."""
        try:
            lease = self._api.get(f"{self._path}/{self._config.name}")
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self._config.identity:
                return
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_now_micro())
            self._api.update(f"{self._path}/{self._config.name}", {**lease, "spec": spec})
            log.info("released the lease", lease=self._config.name)
        except KubeError as exc:
            log.warning("could not release the lease", error=str(exc))
