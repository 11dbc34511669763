"""What a provisioning run needs besides Kubernetes: the Heketi under test (`Target`),
a namespace, Heketi Secret and StorageClass of its own on a `Cluster` (`World`), and the
`glusterfs-provisioner controller` process serving them as its service account
(`Controller`). The contract tests (tests/contract) and bench/burst_kube.py share them.
"""

import base64
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from provisioner.core import annotations
from provisioner.heketi.client import HeketiClient
from provisioner.heketi.config import HeketiConfig
from testbed.clusters import INSTALL_NS, Cluster
from testbed.heketi.server import HeketiTestServer

Obj = dict[str, Any]
#: Every Heketi volume a contract test or bench run creates starts with this (a real
#: Heketi may hold others).
OURS = "tcontract"
SECRET = "heketi"  # noqa: S105 - the name of the Secret, not a secret
#: How long cleanup waits for the controller to delete the PVs a run left.
CLEANUP_SECONDS = 120.0
#: Short leases, so a controller that was SIGKILLed is followed within seconds.
LEASE_FLAGS = [
    "--leader-election-lease-duration",
    "6s",
    "--leader-election-renew-deadline",
    "4s",
    "--leader-election-retry-period",
    "1s",
]


@dataclass(frozen=True)
class Target:
    """The Heketi under test; `server` is None for a real Heketi."""

    url: str
    key: str
    server: HeketiTestServer | None

    def config(self, **changes: Any) -> HeketiConfig:
        base = HeketiConfig(
            url=self.url,
            key=self.key,
            request_timeout=10.0,
            operation_deadline=60.0,
            poll_initial=0.02,
            poll_max=0.2,
            retry_base=0.05,
            retry_cap=0.5,
            retry_budget=20.0,
        )
        return replace(base, **changes)


class World:
    """What one test provisions into: namespace `ns`, class `storage_class` (reclaim
    Delete, expansion allowed) whose Heketi volumes are named `<prefix>_...`."""

    def __init__(self, cluster: Cluster, target: Target, label: str) -> None:
        self.cluster, self.target = cluster, target
        self.ns = cluster.namespace(label)
        self.storage_class = f"{self.ns}-class"
        #: Heketi names of this class: <prefix>_<namespace>_<claim>_<uid>.
        self.prefix = f"{OURS}{self.ns.replace('-', '')}"
        key = base64.b64encode(target.key.encode()).decode()
        cluster.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/glusterfs",
                "metadata": {"name": SECRET, "namespace": self.ns},
                "data": {"key": key},
            }
        )
        cluster.create(self.class_object())

    def class_object(self) -> Obj:
        return {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": self.storage_class},
            "provisioner": annotations.DRIVER_NAME,
            "reclaimPolicy": "Delete",
            "allowVolumeExpansion": True,
            "parameters": {
                "resturl": self.target.url,
                "restuser": "admin",
                "secretNamespace": self.ns,
                "secretName": SECRET,
                # our names, so a real Heketi's other volumes are told apart
                "volumenameprefix": self.prefix,
            },
        }

    def claim(
        self, name: str, size: str = "1Gi", annotations: dict[str, str] | None = None
    ) -> None:
        self.cluster.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": self.ns, "annotations": annotations or {}},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": self.storage_class,
                    "resources": {"requests": {"storage": size}},
                },
            }
        )

    def delete_claim(self, name: str) -> None:
        self.cluster.delete("persistentvolumeclaims", name, self.ns)

    def claims(self) -> list[Obj]:
        return self.cluster.list("persistentvolumeclaims", self.ns)

    def claim_named(self, name: str) -> Obj:
        return self.cluster.get("persistentvolumeclaims", name, self.ns) or {}

    def bound(self) -> list[Obj]:
        """Claims Bound with our provisioning finished (our finalizer taken off)."""
        return [
            c
            for c in self.claims()
            if (c.get("status") or {}).get("phase") == "Bound"
            and annotations.PVC_FINALIZER not in (c["metadata"].get("finalizers") or [])
        ]

    def volumes(self) -> list[Obj]:
        """The PVs of this test's claims (a real cluster may hold others)."""
        return [
            pv
            for pv in self.cluster.list("persistentvolumes")
            if ((pv["spec"].get("claimRef") or {}).get("namespace")) == self.ns
        ]

    def heketi_volumes(self) -> dict[str, str]:
        """id → name of the Heketi volumes of this class."""
        known = HeketiClient(self.target.config()).volume_identities()
        return {i: v.name for i, v in known.items() if v.name.startswith(f"{self.prefix}_")}

    def delete_everything(self) -> None:
        """Delete the claims and wait (bounded) until their PVs are gone."""
        for claim in self.claims():
            self.delete_claim(claim["metadata"]["name"])
        deadline = time.monotonic() + CLEANUP_SECONDS
        while self.volumes() and time.monotonic() < deadline:
            time.sleep(0.5)

    def reasons(self, name: str) -> list[str]:
        """The reasons of the Events about claim `name`, oldest first."""
        events: list[Obj] = sorted(
            self.cluster.events(self.ns, name), key=lambda e: str(e["metadata"]["name"])
        )
        return [e["reason"] for e in events]


class Controller:
    """The controller command as a process (SIGKILL is the crash), as its service account."""

    def __init__(self, cluster: Cluster, where: Path) -> None:
        self._config = cluster.kubeconfig("controller", where)
        self._log = where / "controller.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            sys.executable,
            "-m",
            "provisioner",
            "--log-format",
            "json",
            "controller",
            "--kubeconfig",
            str(self._config),
            "--metrics-address",
            "",
            "--workers",
            "16",
            "--leader-elect",
            "--leader-election-namespace",
            INSTALL_NS,
            *LEASE_FLAGS,
        ]
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self._log.read_text(encoding="utf-8", errors="replace")
