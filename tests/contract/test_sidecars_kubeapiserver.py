"""Sidecar mode on a real cluster: the kubernetes-csi csi-provisioner and csi-resizer
(client-go: protobuf bodies, so a real kube-apiserver only) drive the plugin's Controller
service, `glusterfs-provisioner node --controller-service`, over its unix socket, as the
service account of deploy/overlays/sidecars with its RBAC, with `--extra-create-metadata`
as that overlay runs it. `make contract-kube KUBECONFIG=... CSI_PROVISIONER=<binary>
CSI_RESIZER=<binary>`; skipped unless all three are given."""

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provisioner.core import annotations
from provisioner.heketi.client import HeketiClient
from testbed.clusters import INSTALL_NS, Cluster, RealCluster
from testbed.controller_world import OURS, Target
from tests.contract.clusters import cluster_of
from tests.contract.controller_world import wait_for

#: The Heketi key, named by the class as deploy/overlays/sidecars' example names it.
SECRET = "heketi-admin"


def _binary(name: str) -> str:
    found = os.environ.get(name, "")
    if not found:
        pytest.skip(f"no {name}: make contract-kube KUBECONFIG=... {name}=<binary>")
    return found


@pytest.fixture
def sidecars(target: Target, tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    """The cluster and the prefix of the Heketi volume names of its class."""
    provisioner, resizer = _binary("CSI_PROVISIONER"), _binary("CSI_RESIZER")
    with cluster_of("kubeapiserver") as cluster:
        if not isinstance(cluster, RealCluster):
            pytest.skip("the sidecars need a real kube-apiserver")
        config = cluster.kubeconfig("sidecars", tmp_path)
        (tmp_path / "key").write_text(target.key, encoding="utf-8")
        sock = tmp_path / "csi.sock"
        plugin = [sys.executable, "-m", "provisioner", "node", "--controller-service",
                  f"--endpoint=unix://{sock}", "--node-id=contract", "--metrics-address=",
                  f"--kubelet-dir={tmp_path}/kubelet", f"--state-dir={tmp_path}/state",
                  f"--mount-log-dir={tmp_path}/mount-logs", f"--heketi-url={target.url}",
                  "--heketi-user=admin", f"--heketi-key-file={tmp_path}/key"]  # fmt: skip
        # as deploy/overlays/sidecars runs them
        common = [f"--csi-address={sock}", f"--kubeconfig={config}", "--timeout=150s",
                  "--leader-election", f"--leader-election-namespace={INSTALL_NS}"]  # fmt: skip
        log = (tmp_path / "processes.log").open("ab")
        # the key comes from the file: make contract's HEKETI_KEY is not the plugin's; and
        # csi-provisioner prefers $KUBECONFIG (make's admin one) to --kubeconfig
        env = {k: v for k, v in os.environ.items() if k not in ("HEKETI_KEY", "KUBECONFIG")}
        running = [subprocess.Popen(plugin, stdout=log, stderr=subprocess.STDOUT, env=env)]
        wait_for("the plugin's socket", sock.exists, timeout=60)
        running += [
            subprocess.Popen([provisioner, *common, "--extra-create-metadata"], stdout=log,
                             stderr=subprocess.STDOUT, env=env),
            subprocess.Popen([resizer, *common], stdout=log, stderr=subprocess.STDOUT, env=env),
        ]  # fmt: skip
        try:
            yield cluster, f"{OURS}side"
        finally:
            for process in running:
                process.terminate()
                process.wait(timeout=60)
            log.close()


@dataclass(frozen=True)
class SideClass:
    """A namespace and a StorageClass of the sidecars' driver, its Heketi key in a Secret
    the class names as deploy/overlays/sidecars' example does."""

    cluster: Cluster
    ns: str
    name: str

    def claim(self, name: str, size: str = "1Gi", source: str = "") -> None:
        spec: dict[str, Any] = {"accessModes": ["ReadWriteMany"], "storageClassName": self.name,
                                "resources": {"requests": {"storage": size}}}  # fmt: skip
        if source:
            spec["dataSource"] = {"kind": "PersistentVolumeClaim", "name": source}
        self.cluster.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": self.ns},
                "spec": spec,
            }
        )

    def found(self, name: str) -> dict[str, Any]:
        return self.cluster.get("persistentvolumeclaims", name, self.ns) or {}

    def status(self, name: str) -> dict[str, Any]:
        return self.found(name).get("status") or {}

    def bound_pv(self, name: str) -> dict[str, Any]:
        wait_for(f"claim {name} Bound", lambda: self.status(name).get("phase") == "Bound")
        return self.cluster.get("persistentvolumes", self.found(name)["spec"]["volumeName"]) or {}


@pytest.fixture
def side_class(sidecars: tuple[Cluster, str], target: Target) -> Iterator[SideClass]:
    cluster, prefix = sidecars
    ns = cluster.namespace("side")
    made = SideClass(cluster, ns, f"{ns}-class")
    key = base64.b64encode(target.key.encode()).decode()
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/glusterfs",
            "metadata": {"name": SECRET, "namespace": ns},
            "data": {"key": key},
        }
    )
    secret_params = {
        f"csi.storage.k8s.io/{use}-secret-{field}": value
        for use in ("provisioner", "controller-expand")
        for field, value in (("name", SECRET), ("namespace", ns))
    }
    cluster.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": {"name": made.name}, "provisioner": annotations.DRIVER_NAME,
                    "reclaimPolicy": "Delete", "allowVolumeExpansion": True,
                    "parameters": {"volumenameprefix": prefix, **secret_params}})  # fmt: skip
    try:
        yield made
    finally:
        for claim in cluster.list("persistentvolumeclaims", ns):
            cluster.delete("persistentvolumeclaims", claim["metadata"]["name"], ns)
        wait_for("the PVs gone", lambda: not [
            pv for pv in cluster.list("persistentvolumes")
            if (pv["spec"].get("claimRef") or {}).get("namespace") == ns])  # fmt: skip
        cluster.delete("storageclasses", made.name)
        cluster.delete("namespaces", ns)


def test_the_real_sidecars_provision_grow_and_delete_through_the_controller_service(
    sidecars: tuple[Cluster, str], side_class: SideClass, target: Target
) -> None:
    cluster, prefix = sidecars
    side_class.claim("data")
    pv = side_class.bound_pv("data")
    volume_name = pv["metadata"]["name"]
    handle = pv["spec"]["csi"]["volumeHandle"]
    heketi = HeketiClient(target.config())
    # --extra-create-metadata: the name carries the claim's namespace and name
    assert heketi.get_volume(handle).name.startswith(f"{prefix}_{side_class.ns}_data_")
    cluster.patch("persistentvolumeclaims", "data", side_class.ns,
                  {"spec": {"resources": {"requests": {"storage": "2Gi"}}}})  # fmt: skip
    wait_for(
        "the claim grown",
        lambda: side_class.status("data").get("capacity", {}).get("storage") == "2Gi",
    )
    assert heketi.get_volume(handle).size_gib == 2
    reasons = {e["reason"] for e in cluster.events(side_class.ns, "data")}
    assert {"ExternalExpanding", "VolumeResizeSuccessful"} <= reasons
    cluster.delete("persistentvolumeclaims", "data", side_class.ns)
    wait_for("the PV gone", lambda: cluster.get("persistentvolumes", volume_name) is None)
    assert handle not in heketi.volume_identities()


def test_the_real_sidecars_clone_a_claim_and_the_source_can_be_deleted_after(
    sidecars: tuple[Cluster, str], side_class: SideClass, target: Target
) -> None:
    """csi-provisioner reads the source's PV and puts its cloning-protection finalizer on
    the source claim while the clone is provisioned; the source can be deleted after.
    (Heketi's clone: the test server's only; Heketi v10.4.1's mock executor panics on
    clone, ../shared/peers/README.md.)"""
    if target.server is None:
        pytest.skip("Heketi v10.4.1's mock executor cannot clone")
    cluster, _ = sidecars
    side_class.claim("source")
    source = side_class.bound_pv("source")
    side_class.claim("copy", source="source")
    copy = side_class.bound_pv("copy")
    assert copy["spec"]["csi"]["volumeAttributes"][annotations.CTX_CLONE_OF] == (
        source["spec"]["csi"]["volumeHandle"])  # fmt: skip
    # the cloning-protection finalizer does not keep a deleted source once its clone is made
    cluster.delete("persistentvolumeclaims", "source", side_class.ns)
    wait_for("the source claim gone", lambda: not side_class.found("source"))
    source_pv = source["metadata"]["name"]
    wait_for("its PV gone", lambda: not cluster.get("persistentvolumes", source_pv))
    assert side_class.status("copy").get("phase") == "Bound"


def test_the_real_sidecars_report_a_claim_heketi_has_no_room_for_as_one_counted_event(
    side_class: SideClass,
) -> None:
    side_class.claim("huge", size="100000Gi")

    def counted() -> dict[str, Any] | None:
        failed = [e for e in side_class.cluster.events(side_class.ns, "huge")
                  if e["reason"] == "ProvisioningFailed"]  # fmt: skip
        return failed[0] if len(failed) == 1 and failed[0].get("count", 1) >= 2 else None

    assert "No space" in wait_for("ProvisioningFailed counted twice", counted)["message"]
    assert side_class.status("huge").get("phase") == "Pending"
