"""The system under test: test servers in this process, the rest as child processes.

The Kubernetes API test server (with its PV binder) and the Heketi test server
(memory mode: volumes are bookkeeping, real routes only) run as threads of the
soak, so their fault controls are method calls, never extra routes on the API
ports. Two leader-elected controllers and the node plugin are child processes
that reach the servers over HTTP, as in a cluster.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc

from provisioner import names
from provisioner.controller.command import lease_name
from provisioner.csi import csi_pb2, csi_pb2_grpc
from testbed.chaos import processes
from testbed.chaos.api import KubeUser, class_path, secret_path
from testbed.chaos.processes import SYSTEM_NAMESPACE, Child
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer, kubeconfig
from testbed.net import free_port

#: Namespace of the claims.
APP_NAMESPACE: Final = "chaos"
CLASS_NAME: Final = "glusterfs"
SECRET_NAME: Final = "heketi-admin"  # noqa: S105 - the Secret's name, not a key
#: A narrow GID range: a second use of one GID is likelier to show if it can happen.
GID_MIN: Final = 2000
GID_MAX: Final = 2999
#: How long one Heketi operation runs when no latency fault is active.
HEKETI_LATENCY_MS: Final = 400
#: Seconds the processes may take to become ready at the start.
START_TIMEOUT_S: Final = 90.0
#: Seconds one CSI probe may take.
PROBE_TIMEOUT_S: Final = 5.0
LEASE: Final = lease_name(names.DRIVER_NAME)


@dataclass
class Cluster:
    workdir: Path
    heketi_key: str = field(default_factory=lambda: secrets.token_hex(24))
    kube: KubeTestServer = field(default_factory=lambda: KubeTestServer(binder=True))
    heketi: HeketiTestServer | None = None
    user: KubeUser | None = None
    controllers: list[Child] = field(default_factory=list)
    node: Child | None = None
    socket_path: Path = Path()

    # -- start and stop ------------------------------------------------------------------

    def start(self) -> None:
        self.heketi = HeketiTestServer(
            admin_key=self.heketi_key, mode="memory", latency_ms=HEKETI_LATENCY_MS
        )
        self.heketi.start()
        self.kube.start()
        self.user = KubeUser(self.kube.url)
        self._create_objects()
        config = self.workdir / "kubeconfig"
        config.write_text(json.dumps(kubeconfig(self.kube.url)))
        self.controllers = [
            processes.controller(
                role=role, workdir=self.workdir, kubeconfig=config, metrics_port=free_port()
            )
            for role in ("a", "b")
        ]
        self.socket_path = self.workdir / "csi" / "csi.sock"
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.node = processes.node_plugin(workdir=self.workdir, socket_path=self.socket_path)
        for child in self.children:
            child.start()
        self._wait_started()

    @property
    def children(self) -> list[Child]:
        return [*self.controllers, *([self.node] if self.node else [])]

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for child in self.children:
                if not child.running():
                    tail = child.log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{child.role} exited at start:\n{tail}")
            if self.leader() is not None and self.node_serving():
                return
            time.sleep(0.2)
        raise RuntimeError(f"no leader or no node plugin within {START_TIMEOUT_S:g}s")

    def stop(self) -> None:
        processes.stop_all(self.children)
        if self.user is not None:
            self.user.close()
        if self.heketi is not None:
            self.heketi.stop()
        self.kube.stop()

    # -- the objects a cluster admin creates --------------------------------------------

    def _create_objects(self) -> None:
        for namespace in (SYSTEM_NAMESPACE, APP_NAMESPACE):
            self.kube.create(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
        self.kube.create(self.secret())
        self.kube.create(self.storage_class())

    def secret(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": SYSTEM_NAMESPACE},
            "type": "kubernetes.io/glusterfs",
            "stringData": {"key": self.heketi_key},
        }

    def storage_class(self) -> dict[str, Any]:
        assert self.heketi is not None
        return {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": CLASS_NAME},
            "provisioner": names.DRIVER_NAME,
            "parameters": {
                "resturl": self.heketi.url,
                "restuser": "admin",
                "secretNamespace": SYSTEM_NAMESPACE,
                "secretName": SECRET_NAME,
                "volumetype": "replicate:3",
                "gidMin": str(GID_MIN),
                "gidMax": str(GID_MAX),
            },
            "reclaimPolicy": "Delete",
            "allowVolumeExpansion": True,
            "volumeBindingMode": "Immediate",
        }

    def restore(self, what: str) -> None:
        """Create the StorageClass or the Secret again (after a delete fault)."""
        assert self.user is not None
        if what == "storageclass":
            self.user.call("POST", class_path(), self.storage_class())
        else:
            self.user.call("POST", secret_path(SYSTEM_NAMESPACE), self.secret())

    # -- who is who ------------------------------------------------------------------------

    def lease(self) -> dict[str, Any] | None:
        return self.kube.get("leases", LEASE, SYSTEM_NAMESPACE)

    def leader(self) -> Child | None:
        """The controller process named by the Lease holder (None: no live holder)."""
        lease = self.lease() or {}
        holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
        for child in self.controllers:
            if holder.startswith(child.env["POD_NAME"] + "_") and child.running():
                return child
        return None

    def standby(self) -> Child | None:
        leader = self.leader()
        others = [c for c in self.controllers if c is not leader and c.running()]
        return others[0] if leader is not None and others else None

    def node_serving(self) -> bool:
        """The node plugin answers Probe ready and NodeGetInfo with its node id."""
        if not self.socket_path.exists():
            return False
        try:
            with grpc.insecure_channel(f"unix://{self.socket_path}") as channel:
                identity = csi_pb2_grpc.IdentityStub(channel)  # type: ignore[no-untyped-call]
                probe = identity.Probe(csi_pb2.ProbeRequest(), timeout=PROBE_TIMEOUT_S)
                node = csi_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
                info = node.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=PROBE_TIMEOUT_S)
        except grpc.RpcError:
            return False
        ready = not probe.HasField("ready") or probe.ready.value  # unset means ready
        return bool(ready) and info.node_id == "chaos-node"

    def supervise(self) -> list[tuple[str, str]]:
        """Start again whatever exited or was killed and is due: [(role, why)]."""
        now = time.monotonic()
        restarted = []
        for child in self.children:
            why = child.supervise(now)
            if why is not None:
                restarted.append((child.role, why))
        return restarted
