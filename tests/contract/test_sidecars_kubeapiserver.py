"""Sidecar mode on a real cluster: the kubernetes-csi csi-provisioner and csi-resizer
(client-go: protobuf bodies, so a real kube-apiserver only) drive the plugin's Controller
service, `glusterfs-provisioner node --controller-service`, over its unix socket, as the
service account of deploy/overlays/sidecars with its RBAC, with `--extra-create-metadata`
as that overlay runs it. `make contract-kube KUBECONFIG=... CSI_PROVISIONER=<binary>
CSI_RESIZER=<binary>`; skipped unless all three are given."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.core import annotations
from provisioner.heketi.client import HeketiClient
from tests.contract.clusters import (
    DEPLOY,
    INSTALL_NS,
    PLURAL_OF_KIND,
    RESOURCES,
    Cluster,
    RealCluster,
    cluster_of,
)
from tests.contract.conftest import OURS, Target
from tests.contract.controller_world import wait_for

SIDECAR_RBAC = DEPLOY / "overlays" / "sidecars" / "csi-controller-rbac.yaml"
ACCOUNT = "glusterfs-provisioner-csi-controller"


def _binary(name: str) -> str:
    found = os.environ.get(name, "")
    if not found:
        pytest.skip(f"no {name}: make contract-kube KUBECONFIG=... {name}=<binary>")
    return found


def _kubeconfig(cluster: RealCluster, where: Path) -> Path:
    for doc in yaml.safe_load_all(SIDECAR_RBAC.read_text(encoding="utf-8")):
        if doc:
            if RESOURCES[PLURAL_OF_KIND[doc["kind"]]][1]:
                doc["metadata"].setdefault("namespace", INSTALL_NS)
            cluster.apply(doc)
    return cluster.token_kubeconfig(ACCOUNT, where / "kubeconfig-sidecars")


@pytest.fixture
def sidecars(target: Target, tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    """The cluster and the prefix of the Heketi volume names of its class."""
    provisioner, resizer = _binary("CSI_PROVISIONER"), _binary("CSI_RESIZER")
    with cluster_of("kubeapiserver") as cluster:
        if not isinstance(cluster, RealCluster):
            pytest.skip("the sidecars need a real kube-apiserver")
        config = _kubeconfig(cluster, tmp_path)
        (tmp_path / "key").write_text(target.key, encoding="utf-8")
        sock = tmp_path / "csi.sock"
        plugin = [sys.executable, "-m", "provisioner", "node", "--controller-service",
                  f"--endpoint=unix://{sock}", "--node-id=contract", "--metrics-address=",
                  f"--kubelet-dir={tmp_path}/kubelet", f"--state-dir={tmp_path}/state",
                  f"--mount-log-dir={tmp_path}/mount-logs", f"--heketi-url={target.url}",
                  "--heketi-user=admin", f"--heketi-key-file={tmp_path}/key"]  # fmt: skip
        common = [f"--csi-address={sock}", f"--kubeconfig={config}", "--timeout=150s"]
        log = (tmp_path / "processes.log").open("ab")
        # the key comes from the file; make contract's HEKETI_KEY is not the plugin's
        env = {k: v for k, v in os.environ.items() if k != "HEKETI_KEY"}
        running = [subprocess.Popen(plugin, stdout=log, stderr=subprocess.STDOUT, env=env)]
        wait_for("the plugin's socket", sock.exists, timeout=60)
        running += [
            subprocess.Popen([provisioner, *common, "--extra-create-metadata"], stdout=log,
                             stderr=subprocess.STDOUT),
            subprocess.Popen([resizer, *common], stdout=log, stderr=subprocess.STDOUT),
        ]  # fmt: skip
        try:
            yield cluster, f"{OURS}side"
        finally:
            for process in running:
                process.terminate()
                process.wait(timeout=60)
            log.close()


def test_the_real_sidecars_provision_grow_and_delete_through_the_controller_service(
    sidecars: tuple[Cluster, str], target: Target
) -> None:
    cluster, prefix = sidecars
    ns = cluster.namespace("side")
    storage_class = f"{ns}-class"
    cluster.create({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": {"name": storage_class}, "provisioner": annotations.DRIVER_NAME,
                    "reclaimPolicy": "Delete", "allowVolumeExpansion": True,
                    "parameters": {"volumenameprefix": prefix}})  # fmt: skip
    try:
        cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "data", "namespace": ns},
                        "spec": {"accessModes": ["ReadWriteMany"],
                                 "storageClassName": storage_class,
                                 "resources": {"requests": {"storage": "1Gi"}}}})  # fmt: skip

        def status() -> dict[str, Any]:
            found: dict[str, Any] = cluster.get("persistentvolumeclaims", "data", ns) or {}
            return found.get("status") or {}

        wait_for("the claim Bound", lambda: status().get("phase") == "Bound")
        found = cluster.get("persistentvolumeclaims", "data", ns) or {}
        volume_name = found["spec"]["volumeName"]
        pv = cluster.get("persistentvolumes", volume_name) or {}
        handle = pv["spec"]["csi"]["volumeHandle"]
        heketi = HeketiClient(target.config())
        # --extra-create-metadata: the name carries the claim's namespace and name
        assert heketi.get_volume(handle).name.startswith(f"{prefix}_{ns}_data_")
        cluster.patch("persistentvolumeclaims", "data", ns,
                      {"spec": {"resources": {"requests": {"storage": "2Gi"}}}})  # fmt: skip
        wait_for("the claim grown", lambda: status().get("capacity", {}).get("storage") == "2Gi")
        assert heketi.get_volume(handle).size_gib == 2
        reasons = {e["reason"] for e in cluster.events(ns, "data")}
        assert {"ExternalExpanding", "VolumeResizeSuccessful"} <= reasons
        cluster.delete("persistentvolumeclaims", "data", ns)
        wait_for("the PV gone", lambda: cluster.get("persistentvolumes", volume_name) is None)
        assert handle not in heketi.volume_identities()
    finally:
        cluster.delete("storageclasses", storage_class)
        cluster.delete("namespaces", ns)
