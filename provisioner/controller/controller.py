"""The controller: caches + work queue + workers + leader election + health."""

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from socket import gethostname
from typing import Any, Final, TypedDict

from kubernetes.client import ApiClient

from provisioner import errors, names
from provisioner.controller import objects as o
from provisioner.controller.classes import StorageClasses
from provisioner.controller.connections import Connections
from provisioner.controller.deletion import VolumeReconciler
from provisioner.controller.events import DEFAULT_PROGRESS_DELAY, EventRecorder
from provisioner.controller.expansion import Expander
from provisioner.controller.gid_reservations import GidReservations
from provisioner.controller.handlers import (
    CLAIM,
    VOLUME,
    ClaimHandler,
    ClassHandler,
    VolumeHandler,
)
from provisioner.controller.heketi_watch import DEFAULT_INTERVAL_SECONDS, HeketiWatch
from provisioner.controller.informer import Informer, InformerSettings, object_key
from provisioner.controller.leader import LeaderElectionConfig, LeaderElector
from provisioner.controller.metrics import Metrics
from provisioner.controller.provision import ClaimReconciler
from provisioner.controller.reporting import Reporter
from provisioner.controller.signals import PendingClaims
from provisioner.controller.workqueue import BackoffPolicy, WorkQueue
from provisioner.controller.writes import NotLeading, Writes
from provisioner.gids import GidAllocator
from provisioner.heketi.config import HeketiSettings
from provisioner.heketi.registry import HeketiClients
from provisioner.kube.api import KubeApi, KubeConflict, path_for
from provisioner.kube.secrets import DEFAULT_TTL_SECONDS, SecretKeys
from provisioner.log import get_logger
from provisioner.metrics import MetricsServer, export_build_info, glusterfs_client_version
from provisioner.volumes import VolumeService


class _Shared(TypedDict):
    """The collaborators every reconciler takes (mypy checks each `**shared` call)."""

    pvs: Informer
    connections: Connections
    writes: Writes
    reporter: Reporter


log = get_logger("controller")

DEFAULT_WORKERS: Final = 8
#: Re-examine every cached object this often, to catch anything an event missed.
DEFAULT_RESYNC_SECONDS: Final = 600.0
#: Longest wait on SIGTERM for workers to finish the claim they hold.
DEFAULT_DRAIN_SECONDS: Final = 30.0
#: A healthy API server lists 10,000 claims in seconds; a minute means it is unreachable.
DEFAULT_SYNC_TIMEOUT_SECONDS: Final = 60.0

#: Retry delay after a 409: the object changed under us, nothing is wrong.
CONFLICT_RETRY_SECONDS: Final = 0.05

Item = tuple[str, str]  # (CLAIM, "ns/name") or (VOLUME, "pv-name")


@dataclass(frozen=True)
class ControllerConfig:
    driver_name: str = names.DRIVER_NAME
    workers: int = DEFAULT_WORKERS
    resync_seconds: float = DEFAULT_RESYNC_SECONDS
    #: None = no leader election (a single replica).
    leader_election: LeaderElectionConfig | None = None
    #: (host, port) of /metrics, /healthz, /readyz; None = not served.
    metrics_address: tuple[str, int] | None = None
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    informer: InformerSettings = field(default_factory=InformerSettings)
    secret_ttl_seconds: float = DEFAULT_TTL_SECONDS
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    #: A "Provisioning" Event is sent only when the claim is not bound within this time.
    progress_event_delay_seconds: float = DEFAULT_PROGRESS_DELAY
    #: Give up (exit non-zero) when the caches are not filled within this time.
    sync_timeout_seconds: float = DEFAULT_SYNC_TIMEOUT_SECONDS
    #: Applied to every Heketi server (timeouts, limits, retry and poll policy).
    heketi_settings: HeketiSettings = field(default_factory=HeketiSettings)
    #: Say `GET /hello` to a Heketi of our classes that no request reached for this long.
    heketi_check_seconds: float = DEFAULT_INTERVAL_SECONDS

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise errors.InvalidArgument(f"--workers must be at least 1, got {self.workers}")
        if self.resync_seconds <= 0:
            raise errors.InvalidArgument("--resync must be a positive duration")
        if not self.driver_name:
            raise errors.InvalidArgument("--driver-name must not be empty")


def default_identity() -> str:
    """Unique per process: the pod (or host) name plus a random suffix, so a restarted
    pod with the same name never mistakes its predecessor's lease for its own."""
    return f"{os.environ.get('POD_NAME') or gethostname()}_{uuid.uuid4().hex[:8]}"


class Controller:
    """Start with `start()`; `stop()` drains workers and releases the lease."""

    def __init__(
        self, api_client: ApiClient, config: ControllerConfig, *, identity: str | None = None
    ) -> None:
        self.config = config
        self.identity = identity or default_identity()
        self.api = KubeApi(api_client)
        self.metrics = Metrics()
        self._queue: WorkQueue[Item] | None = None
        self._queue_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.lost_leadership = threading.Event()
        self._heketi = HeketiClients(observer=self.metrics.heketi)
        self.events = EventRecorder(
            self.api, instance=self.identity, progress_delay=config.progress_event_delay_seconds
        )
        self.claims = self._informer("persistentvolumeclaims", ClaimHandler(self))
        self.pvs = self._informer("persistentvolumes", VolumeHandler(self))
        self.classes = Informer(
            self.api,
            path=path_for(group="storage.k8s.io", plural="storageclasses"),
            handler=ClassHandler(self),
            name="storageclasses",
            settings=config.informer,
        )
        self.gids = GidReservations(GidAllocator())
        self.writes = Writes(
            api=self.api,
            volumes=VolumeService(clients=self._heketi),
            claims=self.claims,
            leading=self.is_leading,
        )
        self.claim_reconciler, self._volumes_reconciler = self._reconcilers()
        self.elector = self._elector()
        self._health: MetricsServer | None = None
        self._heketi_watch = HeketiWatch(
            self.classes, driver=config.driver_name, settings=config.heketi_settings,
            observer=self.metrics.heketi, interval=config.heketi_check_seconds,
        )  # fmt: skip
        self._resync_thread = threading.Thread(target=self._resync_loop, name="resync", daemon=True)

    def _informer(self, plural: str, handler: Any) -> Informer:
        return Informer(
            self.api,
            path=path_for(plural=plural),
            handler=handler,
            name=plural,
            settings=self.config.informer,
        )

    def _reconcilers(self) -> tuple[ClaimReconciler, VolumeReconciler]:
        """The reconcilers and the collaborators they share, passed explicitly."""
        classes = StorageClasses(self.classes, driver=self.config.driver_name)
        secrets = SecretKeys(self.api, ttl=self.config.secret_ttl_seconds)
        connections = Connections(
            secrets=secrets, classes=classes, settings=self.config.heketi_settings
        )
        reporter = Reporter(events=self.events, metrics=self.metrics)
        shared = _Shared(
            pvs=self.pvs, connections=connections, writes=self.writes, reporter=reporter
        )
        expander = Expander(classes=classes, identity=self.identity, **shared)
        claims = ClaimReconciler(
            api=self.api,
            claims=self.claims,
            classes=classes,
            heketi=self._heketi,
            gids=self.gids,
            expander=expander,
            **shared,
        )
        deletion = VolumeReconciler(claims=self.claims, driver=self.config.driver_name, **shared)
        return claims, deletion

    def _elector(self) -> LeaderElector | None:
        if self.config.leader_election is None:
            return None
        election = LeaderElectionConfig(
            **{**self.config.leader_election.__dict__, "identity": self.identity}
        )
        return LeaderElector(
            self.api,
            election,
            on_started=self._on_started_leading,
            on_stopped=self._on_stopped_leading,
        )

    # -- state -------------------------------------------------------------------
    def is_leading(self) -> bool:
        if self._stopping.is_set():
            return False
        return self.elector is None or self.elector.is_leader

    def synced(self) -> bool:
        return self.claims.synced and self.pvs.synced and self.classes.synced

    def ready(self) -> bool:
        """Caches synced and, when electing, the current leader known."""
        if not self.synced() or self._stopping.is_set():
            return False
        return self.elector is None or self.elector.leader_known

    def queue_depth(self) -> int:
        queue = self._queue
        return len(queue) if queue is not None else 0

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        self._start_health()
        for informer in (self.classes, self.pvs, self.claims):
            informer.start()
        timeout = self.config.sync_timeout_seconds
        deadline = time.monotonic() + timeout
        for informer in (self.classes, self.pvs, self.claims):
            if not informer.wait_synced(max(0.0, deadline - time.monotonic())):
                raise errors.Unavailable(
                    f"could not list {informer.name} within {timeout:g}s "
                    f"({informer.last_error or 'no answer'}); is the API server reachable "
                    "and are the RBAC rules applied?"
                )
        log.info(
            "caches synced",
            claims=len(self.claims),
            volumes=len(self.pvs),
            classes=len(self.classes),
        )
        self._resync_thread.start()
        self._heketi_watch.start()
        if self.elector is None:
            self._on_started_leading()
        else:
            self.elector.start()

    def _start_health(self) -> None:
        self.metrics.observe_queue(depth=self.queue_depth, retrying=self._retrying)
        for name, informer in (
            ("pvc", self.claims),
            ("pv", self.pvs),
            ("storageclass", self.classes),
        ):
            self.metrics.cached.labels(name).set_function(_length_of(informer))
        pending = PendingClaims(self.claims, self.classes, driver=self.config.driver_name)
        self.metrics.registry.register(pending)
        export_build_info(self.metrics.registry, glusterfs=glusterfs_client_version())
        if self.config.metrics_address is not None:
            self._health = MetricsServer(
                self.config.metrics_address, registry=self.metrics.registry, ready=self.ready
            )
            self._health.start()

    def _retrying(self) -> int:
        queue = self._queue
        return queue.waiting() if queue is not None else 0

    def stop(self, *, release: bool = True) -> None:
        """Stop: no new work, drain workers (bounded), release the lease, close."""
        self._stopping.set()
        self._stop_workers(drain=True)
        if self.elector is not None:
            self.elector.stop(release=release)
        for informer in (self.claims, self.pvs, self.classes):
            informer.stop()
        self.events.close()
        self._heketi_watch.stop()
        if self._health is not None:
            self._health.stop()
        self._heketi.close()
        log.info("controller stopped")

    # -- leadership --------------------------------------------------------------
    def _on_started_leading(self) -> None:
        self.metrics.leader.set(1)
        queue: WorkQueue[Item] = WorkQueue(backoff=self.config.backoff)
        with self._queue_lock:
            self._queue = queue
        self._enqueue_all()
        self._workers = [
            threading.Thread(target=self._work, args=(queue,), name=f"worker-{i}", daemon=True)
            for i in range(self.config.workers)
        ]
        for worker in self._workers:
            worker.start()
        log.info("started workers", workers=self.config.workers)

    def _on_stopped_leading(self) -> None:
        self.metrics.leader.set(0)
        if not self._stopping.is_set():
            self.lost_leadership.set()
        self._stop_workers(drain=False)

    def _stop_workers(self, *, drain: bool) -> None:
        with self._queue_lock:
            queue, self._queue = self._queue, None
        if queue is None:
            return
        queue.shutdown()
        if drain:
            deadline = time.monotonic() + self.config.drain_seconds
            for worker in self._workers:
                worker.join(max(0.0, deadline - time.monotonic()))

    # -- queueing ------------------------------------------------------------------
    def enqueue(self, item: Item) -> None:
        queue = self._queue
        if queue is not None:
            queue.add(item)

    def _enqueue_all(self) -> None:
        for key in self.claims.keys():  # noqa: SIM118 - Informer is not a dict
            self.enqueue((CLAIM, key))
        for key in self.pvs.keys():  # noqa: SIM118 - Informer is not a dict
            self.enqueue((VOLUME, key))

    def enqueue_pending_claims(self, class_name: str) -> None:
        for pvc in self.claims.items():
            if not (pvc.get("spec") or {}).get("volumeName") and o.claim_class(pvc) == class_name:
                self.enqueue((CLAIM, object_key(pvc)))

    def _resync_loop(self) -> None:
        while not self._stopping.wait(self.config.resync_seconds):
            if self.is_leading():
                self._enqueue_all()

    # -- workers ---------------------------------------------------------------------
    def _work(self, queue: WorkQueue[Item]) -> None:
        while True:
            item = queue.get()
            if item is None:
                return
            try:
                self._process(queue, item)
            finally:
                queue.done(item)

    def _process(self, queue: WorkQueue[Item], item: Item) -> None:
        kind, key = item
        if kind == CLAIM:
            cached = self.claims.get(key)
            version = o.resource_version(cached) if cached is not None else None
            wait = self.writes.expectations.waiting(key, version)
            if wait > 0:
                log.debug(
                    "waiting for the cache to show our last write", key=key, wait=round(wait, 2)
                )
                queue.add_after(item, wait)
                return
        try:
            self._reconcile(kind, key)
            queue.forget(item)
        except NotLeading:
            return
        except KubeConflict as err:
            # someone else changed the object: no fault, no growing backoff (the watch
            # event of that change usually re-queues the key even sooner)
            queue.add_after(item, CONFLICT_RETRY_SECONDS)
            log.debug("conflict; retrying", kind=kind, key=key, error=str(err))
        except (errors.ProvisionerError, ValueError) as err:
            delay = queue.add_rate_limited(item)
            log.warning(
                "reconcile failed; will retry",
                kind=kind,
                key=key,
                error=str(err),
                retry_in=round(delay, 2),
            )
        except Exception:
            delay = queue.add_rate_limited(item)
            log.exception(
                "reconcile crashed; will retry", kind=kind, key=key, retry_in=round(delay, 2)
            )

    def _reconcile(self, kind: str, key: str) -> None:
        if kind == CLAIM:
            self.claim_reconciler.reconcile(key)
        else:
            self._volumes_reconciler.reconcile(key)


def _length_of(informer: Informer) -> Callable[[], float]:
    return lambda: float(len(informer))


def run_until_stopped(controller: Controller, stop: threading.Event) -> bool:
    """Block until `stop` is set (True) or the controller lost its leadership (False)."""
    while not stop.wait(0.2):
        if controller.lost_leadership.is_set():
            return False
    return True
