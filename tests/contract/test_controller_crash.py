"""The issue-12 crash scenario on any Heketi: a burst of claims through the
`glusterfs-provisioner controller` process, SIGKILLed mid-burst and started again.
Every claim binds exactly once; claims deleted while it was down leave no volume;
deleting every claim leaves no volume behind (no orphans)."""

import base64
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from provisioner import names
from provisioner.heketi.client import HeketiClient
from testbed.kube_server import KubeTestServer
from tests import polling
from tests.contract.conftest import OURS, Target, remove_our_volumes

T = TypeVar("T")
NS = "crash"
CLASS = "glusterfs-crash"
SECRET = "heketi-crash"
#: Heketi names of this class: <prefix>_<namespace>_<claim>_<uid>.
PREFIX = f"{OURS}crash"
#: Generous: a loaded 2-core machine runs the whole suite beside this test.
DEADLINE = 240.0


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = DEADLINE) -> T:
    """`tests.polling.wait_for` with this module's default deadline."""
    return polling.wait_for(what, probe, timeout=timeout)


@pytest.fixture
def kube(target: Target) -> Iterator[KubeTestServer]:
    with KubeTestServer(binder=True) as server:
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        server.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/glusterfs",
                "metadata": {"name": SECRET, "namespace": NS},
                "data": {"key": base64.b64encode(target.key.encode()).decode()},
            }
        )
        server.create(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": CLASS},
                "provisioner": names.DRIVER_NAME,
                "reclaimPolicy": "Delete",
                "parameters": {
                    "resturl": target.url,
                    "restuser": "admin",
                    "secretNamespace": NS,
                    "secretName": SECRET,
                    # our names, so a real Heketi's other volumes are told apart
                    "volumenameprefix": PREFIX,
                },
            }
        )
        yield server


class Controller:
    """The controller command as a process (SIGKILL is the crash)."""

    def __init__(self, kube: KubeTestServer, tmp_path: Path) -> None:
        self._config = kube.write_kubeconfig(tmp_path / "kubeconfig")
        self._log = tmp_path / "controller.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "provisioner", "--log-format", "json", "controller",
                "--kubeconfig", str(self._config), "--metrics-address", "",
                "--workers", "16"]  # fmt: skip
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


@pytest.fixture
def controller(kube: KubeTestServer, tmp_path: Path, target: Target) -> Iterator[Controller]:
    running = Controller(kube, tmp_path)
    yield running
    running.stop()
    remove_our_volumes(HeketiClient(target.config()))


def claim(kube: KubeTestServer, name: str) -> None:
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": CLASS,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )


def delete_claim(kube: KubeTestServer, name: str) -> None:
    path = f"{kube.url}/api/v1/namespaces/{NS}/persistentvolumeclaims/{name}"
    kube.api_client().call_api("DELETE", path, {"Accept": "application/json"})


def bound(kube: KubeTestServer) -> list[dict[str, Any]]:
    return [
        c
        for c in kube.list("persistentvolumeclaims", NS)
        if (c.get("status") or {}).get("phase") == "Bound"
        and names.PVC_FINALIZER not in (c["metadata"].get("finalizers") or [])
    ]


def our_volumes(target: Target) -> dict[str, str]:
    """id → name of the volumes of our class on the Heketi under test."""
    known = HeketiClient(target.config()).volume_identities()
    return {i: v.name for i, v in known.items() if v.name.startswith(f"{PREFIX}_")}


def crash_mid_burst(
    target: Target, kube: KubeTestServer, controller: Controller, count: int
) -> None:
    if target.server is not None:
        target.server.set_latency(100)  # creates are still running in Heketi at the crash
    controller.start()
    for i in range(count):
        claim(kube, f"c{i:03d}")
    wait_for("a quarter of the claims bound", lambda: len(bound(kube)) >= count // 4)
    controller.kill()
    print(f"\ncrash: killed with {len(bound(kube))} of {count} claims bound")


def test_a_controller_killed_mid_burst_binds_every_claim_once_and_leaves_no_orphan(
    target: Target, kube: KubeTestServer, controller: Controller
) -> None:
    count = 200
    crash_mid_burst(target, kube, controller, count)
    restarted = time.monotonic()
    controller.start()
    wait_for("every claim bound", lambda: len(bound(kube)) == count)
    print(f"crash: all {count} bound {time.monotonic() - restarted:.1f} s after the restart")
    volumes = our_volumes(target)
    pvs = kube.list("persistentvolumes")
    assert len(volumes) == count == len(pvs)
    assert {pv["spec"]["csi"]["volumeHandle"] for pv in pvs} == set(volumes)
    for i in range(count):
        delete_claim(kube, f"c{i:03d}")
    wait_for("every volume deleted", lambda: not our_volumes(target) or None)
    wait_for("every PV gone", lambda: not kube.list("persistentvolumes") or None)
    print(f"crash: claims deleted, {len(our_volumes(target))} volumes left (orphans)")


def test_claims_deleted_while_the_controller_was_down_leave_no_volume(
    target: Target, kube: KubeTestServer, controller: Controller
) -> None:
    count = 60
    crash_mid_burst(target, kube, controller, count)
    gone = [f"c{i:03d}" for i in range(0, count, 3)]  # bound ones and pending ones alike
    for name in gone:
        delete_claim(kube, name)
    controller.start()
    wait_for("the other claims bound", lambda: len(bound(kube)) == count - len(gone))
    wait_for(
        "only the kept claims' volumes",
        lambda: len(our_volumes(target)) == count - len(gone) or None,
    )
    wait_for(
        "the deleted claims gone",
        lambda: len(kube.list("persistentvolumeclaims", NS)) == count - len(gone),
    )
    # A claim deleted while its create was running may still have been bound from a
    # cache that had not seen the deletion; its PV is then Released and deleted.
    wait_for(
        "only the kept claims' PVs",
        lambda: len(kube.list("persistentvolumes")) == count - len(gone) or None,
    )
    assert len(our_volumes(target)) == count - len(gone)
