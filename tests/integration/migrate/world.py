"""In-tree GlusterFS objects as the classic guide and the in-tree Heketi provisioner made
them, on the Kubernetes API test server (binder and pv-protection on), and `migrate` runs."""

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from provisioner import names
from provisioner.cli import build_parser
from provisioner.heketi.client import HeketiClient, HeketiConfig
from provisioner.heketi.types import Durability, VolumeCreateRequest
from provisioner.migrate import command
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from tests import polling

JSON = dict[str, Any]
T = TypeVar("T")
NS = "apps"
SERVERS = ("192.0.2.10", "192.0.2.11")
HEKETI_KEY = "migrate-admin-key"
CLASS = "gluster-heketi"
#: Generous deadline for the binder to react on a loaded machine.
DEADLINE = 30.0


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = DEADLINE) -> T:
    """`tests.polling.wait_for` with this module's default deadline."""
    return polling.wait_for(what, probe, timeout=timeout)


def endpoints(name: str, ips: tuple[str, ...] = SERVERS, *, namespace: str = NS,
              labels: dict[str, str] | None = None) -> JSON:  # fmt: skip
    return {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"port": 1}]}],
    }  # fmt: skip


def service(name: str, *, namespace: str = NS, labels: dict[str, str] | None = None) -> JSON:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"ports": [{"port": 1}]},
    }  # fmt: skip


def claim(name: str, *, volume: str, namespace: str = NS, size: str = "1Gi",
          storage_class: str = "") -> JSON:  # fmt: skip
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}},
                 "storageClassName": storage_class, "volumeName": volume},
    }  # fmt: skip


def in_tree_pv(name: str, *, path: str, endpoints_name: str, claim_name: str,
               namespace: str = NS, policy: str = "Retain", storage_class: str = "",
               annotations: dict[str, str] | None = None, endpoints_namespace: str = "",
               read_only: bool = False) -> JSON:  # fmt: skip
    gluster: JSON = {"endpoints": endpoints_name, "path": path, "readOnly": read_only}
    if endpoints_namespace:
        gluster["endpointsNamespace"] = endpoints_namespace
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": annotations or {},
                     "labels": {"app": "legacy"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                 "persistentVolumeReclaimPolicy": policy, "storageClassName": storage_class,
                 "mountOptions": ["log-level=WARNING"], "glusterfs": gluster,
                 "claimRef": {"namespace": namespace, "name": claim_name}},
    }  # fmt: skip


def heketi_annotations(volume_id: str, gid: int) -> dict[str, str]:
    """What the in-tree Heketi provisioner put on its PVs."""
    return {
        names.ANN_IN_TREE_HEKETI_ID: volume_id,
        "gluster.org/type": "file",
        names.ANN_IN_TREE_CREATED_BY: "heketi-dynamic-provisioner",
        "Description": "Gluster-Internal: Dynamically provisioned PV",
        names.ANN_GID: str(gid),
        names.ANN_PROVISIONED_BY: names.IN_TREE_PLUGIN,
    }


@dataclass
class World:
    kube: KubeTestServer
    heketi: HeketiTestServer
    client: HeketiClient
    checkpoint: Callable[[str, Enum], None] | None = None
    outputs: list[str] = field(default_factory=list)

    def add_static(
        self,
        pv: str = "gluster-pv",
        claim_name: str = "data",
        path: str = "gv-legacy",
        endpoints_name: str = "glusterfs-cluster",
    ) -> None:
        if self.kube.get("endpoints", endpoints_name, NS) is None:
            self.kube.create(endpoints(endpoints_name))
            self.kube.create(service(endpoints_name))
        self.kube.create(in_tree_pv(pv, path=path, endpoints_name=endpoints_name,
                                    claim_name=claim_name))  # fmt: skip
        self.kube.create(claim(claim_name, volume=pv))
        self.wait_bound(claim_name, pv)

    def add_heketi(
        self, claim_name: str = "db", gid: int = 2001, options: tuple[str, ...] = ()
    ) -> tuple[str, str]:
        """A Heketi volume (with these Gluster volume options) and its in-tree PV, Endpoints,
        Service; (pv name, volume id)."""
        request = VolumeCreateRequest(size_gib=1, name="", durability=Durability(type="none"),
                                      gid=gid, gluster_volume_options=options)  # fmt: skip
        volume = self.client.create_volume(request)
        ep_name = f"{names.IN_TREE_DYNAMIC_ENDPOINTS_PREFIX}{claim_name}"
        label = {names.LABEL_IN_TREE_PROVISIONED_FOR: claim_name}
        self.kube.create(endpoints(ep_name, labels=label))
        self.kube.create(service(ep_name, labels=label))
        pv = f"pvc-{claim_name}-0000"
        self.kube.create(in_tree_pv(
            pv, path=volume.name, endpoints_name=ep_name, claim_name=claim_name,
            policy="Delete", storage_class=CLASS, annotations=heketi_annotations(volume.id, gid),
        ))  # fmt: skip
        self.kube.create(claim(claim_name, volume=pv, storage_class=CLASS))
        self.wait_bound(claim_name, pv)
        return pv, volume.id

    def wait_bound(self, claim_name: str, pv: str, namespace: str = NS) -> None:
        def bound() -> bool:
            c = self.kube.get("persistentvolumeclaims", claim_name, namespace) or {}
            v = self.kube.get("persistentvolumes", pv) or {}
            return (c.get("status") or {}).get("phase") == "Bound" and (v.get("status") or {}).get(
                "phase"
            ) == "Bound"

        wait_for(f"claim {claim_name} bound to {pv}", bound)

    def migrate(self, *argv: str) -> int:
        args = build_parser().parse_args(["migrate", "--wait", "30s", *argv])
        config = command.config_from_args(args)
        out = io.StringIO()
        code = command.execute(config, api_client=self.kube.api_client(), out=out,
                               checkpoint=self.checkpoint)  # fmt: skip
        self.outputs.append(out.getvalue())
        return code

    @property
    def output(self) -> str:
        return self.outputs[-1]


def heketi_class(url: str) -> JSON:
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": CLASS, "annotations": {names.ANN_DEFAULT_CLASS: "true"}},
        "provisioner": names.IN_TREE_PLUGIN, "reclaimPolicy": "Delete",
        "allowVolumeExpansion": True,
        "parameters": {"resturl": url, "restuser": "admin", "secretNamespace": "kube-system",
                       "secretName": "heketi-secret", "gidMin": "2000", "gidMax": "2999"},
    }  # fmt: skip


def heketi_secret() -> JSON:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/glusterfs",
        "metadata": {"name": "heketi-secret", "namespace": "kube-system"},
        "stringData": {"key": HEKETI_KEY},
    }  # fmt: skip


def heketi_client(url: str) -> HeketiClient:
    return HeketiClient(HeketiConfig(url=url, user="admin", key=HEKETI_KEY))
