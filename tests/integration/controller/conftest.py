"""The controller in-process against the Kubernetes API and Heketi test servers.

Both servers listen on real sockets; the controller uses the real `kubernetes`
client and the real Heketi client. Timings are shrunk through configuration
(backoff, lease, Heketi retry budget), never by patching our code.
"""

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from provisioner import names
from provisioner.controller.controller import Controller, ControllerConfig
from provisioner.controller.informer import InformerSettings
from provisioner.controller.leader import LeaderElectionConfig
from provisioner.controller.workqueue import BackoffPolicy
from provisioner.heketi.config import HeketiSettings
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from tests import polling

T = TypeVar("T")

HEKETI_KEY = "admin-secret"
SYSTEM_NS = "storage"
APP_NS = "apps"
CLASS = "glusterfs"
SECRET = "heketi"

#: Fast retries for tests: the production defaults (1 s .. 5 min) would dominate runtime.
FAST_BACKOFF = BackoffPolicy(base_seconds=0.05, cap_seconds=0.5, jitter=0.2)
FAST_INFORMER = InformerSettings(
    reconnect_backoff=BackoffPolicy(base_seconds=0.05, cap_seconds=0.3, jitter=0.2)
)
#: Heketi client: retry a refused connection / 429 briefly, then let the queue back off.
FAST_HEKETI = HeketiSettings(
    retry_base=0.02,
    retry_cap=0.1,
    retry_budget=1.0,
    retry_attempts=4,
    operation_deadline=20.0,
    request_timeout=5.0,
    poll_initial=0.02,
    poll_max=0.1,
)


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = 15.0) -> T:
    """`tests.polling.wait_for` with this module's default deadline."""
    return polling.wait_for(what, probe, timeout=timeout)


@dataclass
class Cluster:
    kube: KubeTestServer
    heketi: HeketiTestServer
    controllers: list[Controller] = field(default_factory=list)

    # -- objects -------------------------------------------------------------------
    def class_parameters(self, **overrides: str) -> dict[str, str]:
        """Parameters of a class served by this Heketi with the key in the Secret,
        plus (or replacing) `overrides`."""
        return {
            "resturl": self.heketi.url,
            "restuser": "admin",
            "secretNamespace": SYSTEM_NS,
            "secretName": SECRET,
            **overrides,
        }

    def storage_class(
        self, name: str = CLASS, *, parameters: dict[str, str] | None = None, **fields: Any
    ) -> dict[str, Any]:
        params = parameters if parameters is not None else self.class_parameters()
        body = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": names.DRIVER_NAME,
            "parameters": params,
            "reclaimPolicy": "Delete",
            **fields,
        }
        return self.kube.create(body)

    def claim(
        self,
        name: str = "data",
        *,
        size: str = "2Gi",
        modes: tuple[str, ...] = ("ReadWriteMany",),
        storage_class: str = CLASS,
        **spec: Any,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": APP_NS},
            "spec": {
                "accessModes": list(modes),
                "storageClassName": storage_class,
                "resources": {"requests": {"storage": size}},
                **spec,
            },
        }
        return self.kube.create(body)

    def get_claim(self, name: str = "data") -> dict[str, Any] | None:
        return self.kube.get("persistentvolumeclaims", name, APP_NS)

    def delete_claim(self, name: str = "data") -> None:
        self.api_delete(f"/api/v1/namespaces/{APP_NS}/persistentvolumeclaims/{name}")

    def api_delete(self, path: str) -> None:
        client = self.kube.api_client()
        client.call_api("DELETE", self.kube.url + path, {"Accept": "application/json"})

    def bound(self, name: str = "data") -> dict[str, Any] | None:
        pvc = self.get_claim(name)
        if pvc and (pvc.get("status") or {}).get("phase") == "Bound":
            return pvc
        return None

    def wait_bound(self, name: str = "data", *, timeout: float = 15.0) -> dict[str, Any]:
        """The claim once Bound and no longer carrying our provisioning finalizer."""

        def done() -> dict[str, Any] | None:
            pvc = self.bound(name)
            if pvc is None or names.PVC_FINALIZER in (pvc["metadata"].get("finalizers") or []):
                return None
            return pvc

        return wait_for(f"claim {name} bound", done, timeout=timeout)

    def pv_for(self, pvc: dict[str, Any]) -> dict[str, Any] | None:
        return self.kube.get("persistentvolumes", f"pvc-{pvc['metadata']['uid']}")

    def events(self, *, reason: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        found = []
        for namespace in (APP_NS, "default"):
            for event in self.kube.list("events", namespace):
                if reason is not None and event.get("reason") != reason:
                    continue
                if name is not None and event["involvedObject"].get("name") != name:
                    continue
                found.append(event)
        return found

    def wait_event(
        self, reason: str, *, name: str | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        def first() -> dict[str, Any] | None:
            found = self.events(reason=reason, name=name)
            return found[0] if found else None

        return wait_for(f"event {reason}", first, timeout=timeout)

    def heketi_volume_names(self) -> list[str]:
        return sorted(v["name"] for v in self.heketi.volumes())

    # -- controllers ---------------------------------------------------------------
    def config(self, **overrides: Any) -> ControllerConfig:
        settings: dict[str, Any] = {
            "workers": 4,
            "backoff": FAST_BACKOFF,
            "informer": FAST_INFORMER,
            "heketi_settings": FAST_HEKETI,
            "drain_seconds": 5.0,
            "sync_timeout_seconds": 10.0,
            "progress_event_delay_seconds": 0.2,
            "secret_ttl_seconds": 5.0,
        }
        settings.update(overrides)
        return ControllerConfig(**settings)

    def election(self, **overrides: Any) -> LeaderElectionConfig:
        settings: dict[str, Any] = {
            "namespace": SYSTEM_NS,
            "name": "glusterfs-csi-heketi-io",
            "identity": "",
            "lease_duration": 2.0,
            "renew_deadline": 1.5,
            "retry_period": 0.2,
        }
        settings.update(overrides)
        return LeaderElectionConfig(**settings)

    def start_controller(self, *, identity: str | None = None, **overrides: Any) -> Controller:
        controller = Controller(
            self.kube.api_client(),
            self.config(**overrides),
            identity=identity or f"test-{uuid.uuid4().hex[:6]}",
        )
        self.controllers.append(controller)
        controller.start()
        return controller

    def stop_controller(self, controller: Controller, *, release: bool = True) -> None:
        controller.stop(release=release)
        self.controllers.remove(controller)


def add_namespaces_and_secret(server: KubeTestServer, *, key: str = HEKETI_KEY) -> None:
    """The namespaces of these tests and the Heketi Secret (data key `key`) in SYSTEM_NS."""
    for namespace in (SYSTEM_NS, APP_NS):
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    server.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/glusterfs",
            "metadata": {"name": SECRET, "namespace": SYSTEM_NS},
            "data": {"key": base64.b64encode(key.encode()).decode()},
        }
    )


@pytest.fixture
def kube() -> Iterator[KubeTestServer]:
    with KubeTestServer(binder=True) as server:
        add_namespaces_and_secret(server)
        yield server


@pytest.fixture
def heketi() -> Iterator[HeketiTestServer]:
    with HeketiTestServer(admin_key=HEKETI_KEY) as server:
        yield server


@pytest.fixture
def cluster(kube: KubeTestServer, heketi: HeketiTestServer) -> Iterator[Cluster]:
    env = Cluster(kube=kube, heketi=heketi)
    yield env
    for controller in list(env.controllers):
        controller.stop()


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    """A cluster with the default class and one controller running."""
    cluster.storage_class(allowVolumeExpansion=True)
    cluster.start_controller()
    return cluster
