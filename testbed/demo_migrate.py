"""`make demo-migrate`: in-tree GlusterFS volumes brought across to CSI, on real GlusterFS.

Creates what the classic GlusterFS guide creates (Endpoints `glusterfs-cluster` pointing
at the local Gluster server, its selector-less Service, a static in-tree PV for a real
Gluster volume that already holds a file, a claim bound to it) plus one PV as the in-tree
Heketi provisioner made it (annotations, `glusterfs-dynamic-<claim>` Endpoints/Service,
its in-tree StorageClass). Then runs `migrate plan` and `migrate apply --all
--prune-endpoints`, mounts both CSI PVs through the node plugin as kubelet would and reads
the files written before, deletes the Heketi-backed claim (our controller deletes its
Heketi volume) and shows the static volume kept. Everything is cleaned up, also on
failure and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from provisioner import names
from provisioner.csi import csi_pb2
from provisioner.heketi.client import HeketiClient, HeketiConfig
from provisioner.heketi.types import Durability, VolumeCreateRequest
from testbed import demo as base
from testbed import demo_harness as harness
from testbed.demo_harness import Demo, StepFailed, detail, kube, say, wait_for

NS = "legacy"
STATIC_PV, STATIC_CLAIM, HEKETI_CLAIM = "gluster-pv", "data", "db"
IN_TREE_CLASS = "gluster-heketi"
#: The file each volume holds before migration; read back through the CSI mounts.
FILE = "before-migration.txt"


@dataclass
class MigrateDemo(Demo):
    host_ip: str = ""
    static_volume: str = ""
    heketi_id: str = ""
    heketi_volume: str = ""
    heketi_pv: str = ""
    kubeconfig: Path = Path()
    mounts: list[Path] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)


def host_ip() -> str:
    """A non-loopback IPv4 of this machine: Endpoints may not hold loopback addresses."""
    found = subprocess.run(
        ["hostname", "-I"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.split()
    ips = [ip for ip in found if "." in ip and not ip.startswith("127.")]
    if not ips:
        raise StepFailed("this machine has no non-loopback IPv4 address for the Endpoints")
    return ips[0]


def gluster(*args: str) -> str:
    done = subprocess.run(
        ["gluster", "--mode=script", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise StepFailed(f"gluster {' '.join(args)}: {(done.stdout + done.stderr).strip()}")
    return done.stdout


def write_through_fuse(demo: MigrateDemo, volume: str, text: str) -> None:
    """Mount `volume` with FUSE (as the in-tree plugin did), write FILE, unmount."""
    point = demo.workdir / f"fuse-{volume}"
    point.mkdir()
    argv = ["mount", "-t", "glusterfs", f"{demo.host_ip}:/{volume}", str(point)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    demo.mounts.append(point)
    (point / FILE).write_text(text)
    subprocess.run(["umount", str(point)], check=True, capture_output=True, timeout=60)
    demo.mounts.remove(point)
    detail(f"{volume}: wrote {FILE} through a FUSE mount of {demo.host_ip}:/{volume}")


def step_start(demo: MigrateDemo) -> None:
    demo.host_ip = host_ip()
    demo.kube_flags = ["--pv-protection"]
    base.step_start(demo)
    demo.kubeconfig = demo.workdir / "kubeconfig"


def step_volumes(demo: MigrateDemo) -> None:
    demo.static_volume = f"gp-demo-legacy-{os.getpid()}"
    brick = demo.bricks_dir / "legacy-brick"
    gluster("volume", "create", demo.static_volume, f"{os.uname().nodename}:{brick}", "force")
    gluster("volume", "start", demo.static_volume)
    detail(f"Gluster volume {demo.static_volume} made by hand (brick {brick})")
    write_through_fuse(demo, demo.static_volume, "static data from before the migration\n")
    config = HeketiConfig(url=demo.heketi_url, user="admin", key=demo.heketi_key)
    with contextlib.closing(HeketiClient(config)) as client:
        request = VolumeCreateRequest(
            size_gib=1, name="", gid=2001, durability=Durability(type="none")
        )
        volume = client.create_volume(request)
    demo.heketi_id, demo.heketi_volume = volume.id, volume.name
    demo.heketi_pv = f"pvc-{hashlib.sha256(volume.id.encode()).hexdigest()[:8]}-in-tree"
    detail(f"Heketi volume {volume.id} ({volume.name}, gid 2001), as the in-tree provisioner")
    write_through_fuse(demo, demo.heketi_volume, "heketi data from before the migration\n")


def post(demo: MigrateDemo, path: str, obj: dict[str, Any]) -> None:
    kube(demo, "POST", path, obj)
    detail(f"{obj['kind'].lower()}/{obj['metadata']['name']} created")


def endpoints_and_service(demo: MigrateDemo, name: str, labels: dict[str, str]) -> None:
    meta = {"name": name, "namespace": NS, "labels": labels}
    post(
        demo,
        f"/api/v1/namespaces/{NS}/endpoints",
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": meta,
            "subsets": [{"addresses": [{"ip": demo.host_ip}], "ports": [{"port": 1}]}],
        },
    )
    post(
        demo,
        f"/api/v1/namespaces/{NS}/services",
        {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"ports": [{"port": 1}]}},
    )


def in_tree_pv(name: str, volume: str, endpoints: str, claim: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": extra.get("annotations", {})},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": extra.get("policy", "Retain"),
            "storageClassName": extra.get("storage_class", ""),
            "glusterfs": {"endpoints": endpoints, "path": volume, "readOnly": False},
            "claimRef": {"namespace": NS, "name": claim},
        },
    }


def claim_of(name: str, volume: str, storage_class: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "volumeName": volume,
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


def step_in_tree_objects(demo: MigrateDemo) -> None:
    static_objects(demo)
    heketi_objects(demo)


def static_objects(demo: MigrateDemo) -> None:
    """A hand-made in-tree PV (its Endpoints and Service) and its claim."""
    post(
        demo,
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
    )
    endpoints_and_service(demo, "glusterfs-cluster", {})
    post(
        demo,
        "/api/v1/persistentvolumes",
        in_tree_pv(STATIC_PV, demo.static_volume, "glusterfs-cluster", STATIC_CLAIM),
    )
    post(
        demo,
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
        claim_of(STATIC_CLAIM, STATIC_PV, ""),
    )


def heketi_objects(demo: MigrateDemo) -> None:
    """What the in-tree plugin leaves for a Heketi-provisioned claim: its class and
    Secret, the dynamic Endpoints and Service, the annotated PV and the claim."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/glusterfs",
        "metadata": {"name": "heketi-secret", "namespace": NS},
        "stringData": {"key": demo.heketi_key},
    }
    post(demo, f"/api/v1/namespaces/{NS}/secrets", secret)
    post(
        demo,
        "/apis/storage.k8s.io/v1/storageclasses",
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": IN_TREE_CLASS},
            "provisioner": names.IN_TREE_PLUGIN,
            "reclaimPolicy": "Delete",
            "parameters": {
                "resturl": demo.heketi_url,
                "restuser": "admin",
                "secretNamespace": NS,
                "secretName": "heketi-secret",
            },
        },
    )
    dynamic = f"{names.IN_TREE_DYNAMIC_ENDPOINTS_PREFIX}{HEKETI_CLAIM}"
    endpoints_and_service(demo, dynamic, {names.LABEL_IN_TREE_PROVISIONED_FOR: HEKETI_CLAIM})
    annotations = {
        names.ANN_IN_TREE_HEKETI_ID: demo.heketi_id,
        "gluster.org/type": "file",
        names.ANN_IN_TREE_CREATED_BY: "heketi-dynamic-provisioner",
        "Description": "Gluster-Internal: Dynamically provisioned PV",
        names.ANN_GID: "2001",
        names.ANN_PROVISIONED_BY: names.IN_TREE_PLUGIN,
    }
    post(
        demo,
        "/api/v1/persistentvolumes",
        in_tree_pv(
            demo.heketi_pv,
            demo.heketi_volume,
            dynamic,
            HEKETI_CLAIM,
            annotations=annotations,
            policy="Delete",
            storage_class=IN_TREE_CLASS,
        ),
    )
    post(
        demo,
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
        claim_of(HEKETI_CLAIM, demo.heketi_pv, IN_TREE_CLASS),
    )


def bound_check(demo: MigrateDemo, claim: str) -> Callable[[], bool]:
    return lambda: phase(demo, claim) == "Bound"


def phase(demo: MigrateDemo, claim: str) -> str:
    obj = kube(demo, "GET", f"/api/v1/namespaces/{NS}/persistentvolumeclaims/{claim}") or {}
    return str((obj.get("status") or {}).get("phase", ""))


def migrate(demo: MigrateDemo, *argv: str) -> str:
    command = [
        sys.executable,
        "-m",
        "provisioner",
        "--log-level",
        "warning",
        "migrate",
        "--kubeconfig",
        str(demo.kubeconfig),
        *argv,
    ]
    say(f"  $ glusterfs-provisioner migrate {' '.join(argv)}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    for line in done.stdout.splitlines():
        detail(line)
    if done.returncode != 0:
        raise StepFailed(f"migrate {' '.join(argv)} exited {done.returncode}: {done.stderr}")
    demo.outputs[" ".join(argv)] = done.stdout
    return done.stdout


def step_plan(demo: MigrateDemo) -> None:
    migrate(demo, "plan")


def step_apply(demo: MigrateDemo) -> None:
    migrate(demo, "apply", "--all", "--prune-endpoints")
    for pv in (STATIC_PV, demo.heketi_pv):
        obj = kube(demo, "GET", f"/api/v1/persistentvolumes/{pv}") or {}
        csi = (obj.get("spec") or {}).get("csi") or {}
        detail(
            f"PV {pv}: {obj.get('status', {}).get('phase')}, csi driver "
            f"{csi.get('driver')}, handle {csi.get('volumeHandle')}"
        )
    if kube(demo, "GET", f"/api/v1/namespaces/{NS}/endpoints/glusterfs-dynamic-db") is not None:
        raise StepFailed("the glusterfs-dynamic-db Endpoints were not pruned")


def stage_publish_read(demo: MigrateDemo, pv_name: str) -> str:
    pv = kube(demo, "GET", f"/api/v1/persistentvolumes/{pv_name}") or {}
    csi = pv["spec"]["csi"]
    handle, context = csi["volumeHandle"], dict(csi.get("volumeAttributes") or {})
    digest = hashlib.sha256(handle.encode()).hexdigest()  # kubelet's staging dir per handle
    staging = demo.kubelet_dir / "plugins/kubernetes.io/csi" / names.DRIVER_NAME / digest
    staging = staging / "globalmount"
    target = demo.kubelet_dir / "pods/migrated-pod/volumes/kubernetes.io~csi" / pv_name / "mount"
    staging.mkdir(parents=True)
    target.parent.mkdir(parents=True)
    capability = harness.mount_capability()
    with harness.node_stub(demo) as node:
        node.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id=handle,
                staging_target_path=str(staging),
                volume_capability=capability,
                volume_context=context,
            ),
            timeout=60,
        )
        demo.mounts.append(staging)
        node.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id=handle,
                staging_target_path=str(staging),
                target_path=str(target),
                volume_capability=capability,
                volume_context=context,
            ),
            timeout=60,
        )
        demo.mounts.append(target)
        content = (target / FILE).read_text()
        node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id=handle, target_path=str(target)),
            timeout=60,
        )
        demo.mounts.remove(target)
        node.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(volume_id=handle, staging_target_path=str(staging)),
            timeout=60,
        )
        demo.mounts.remove(staging)
    return content


def step_mount(demo: MigrateDemo) -> None:
    for pv in (STATIC_PV, demo.heketi_pv):
        content = stage_publish_read(demo, pv)
        detail(f"{pv}: staged + published through the node plugin; {FILE}: {content.strip()!r}")
        if "before the migration" not in content:
            raise StepFailed(f"{pv}: the file written before the migration is not there")


def step_delete_heketi_claim(demo: MigrateDemo) -> None:
    kube(demo, "DELETE", f"/api/v1/namespaces/{NS}/persistentvolumeclaims/{HEKETI_CLAIM}")
    detail(f"claim {NS}/{HEKETI_CLAIM} deleted")
    wait_for(
        f"PV {demo.heketi_pv} gone",
        lambda: (
            harness.check_alive(demo)
            and kube(demo, "GET", f"/api/v1/persistentvolumes/{demo.heketi_pv}") is None
        ),
    )
    wait_for(
        f"Gluster volume {demo.heketi_volume} gone",
        lambda: not base.gluster_volume_exists(demo.heketi_volume),
    )
    detail(
        f"$ gluster volume info {demo.heketi_volume} → does not exist (deleted by our "
        "controller through Heketi)"
    )
    if not base.gluster_volume_exists(demo.static_volume):
        raise StepFailed(f"the static volume {demo.static_volume} went away")
    detail(f"$ gluster volume info {demo.static_volume} → still there (static: Retain)")


STEPS: list[tuple[str, Callable[[MigrateDemo], None]]] = [
    (
        "start Heketi (gluster mode), the Kubernetes API, the controller, the node plugin",
        step_start,
    ),
    ("make a Gluster volume by hand and one through Heketi, each holding a file", step_volumes),
    ("create the in-tree objects: Endpoints, Services, PVs, claims, class", step_in_tree_objects),
    ("migrate plan", step_plan),
    ("migrate apply --all --prune-endpoints", step_apply),
    ("mount both CSI PVs as kubelet would and read the files", step_mount),
    ("delete the Heketi-backed claim", step_delete_heketi_claim),
]


def cleanup(demo: MigrateDemo) -> None:
    for point in reversed(demo.mounts):
        subprocess.run(["umount", str(point)], capture_output=True, timeout=30, check=False)
    harness.stop_processes(demo)
    harness.unmount_leftovers(demo.workdir)
    if demo.static_volume:
        for action in (
            ("volume", "stop", demo.static_volume, "force"),
            ("volume", "delete", demo.static_volume),
        ):
            with contextlib.suppress(StepFailed):
                gluster(*action)
    harness.remove_leftover_volumes(demo)
    shutil.rmtree(demo.workdir, ignore_errors=True)


def run_steps(demo: MigrateDemo) -> bool:
    for number, (title, step) in enumerate(STEPS, start=1):
        say(f"[{number}/{len(STEPS)}] {title}")
        started = time.monotonic()
        try:
            step(demo)
        except (StepFailed, grpc.RpcError, OSError, subprocess.SubprocessError) as err:
            message = err.details() if isinstance(err, grpc.RpcError) else str(err)
            say(f"FAILED at step {number} ({title}): {message}")
            return False
        detail(f"done in {time.monotonic() - started:.2f}s")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("make demo-migrate needs root (GlusterFS bricks and FUSE mounts)", file=sys.stderr)
        return 2
    demo = MigrateDemo(workdir=Path(tempfile.mkdtemp(prefix="gp-demo-migrate-")))
    signal.signal(signal.SIGTERM, harness.raise_interrupt)
    ok = False
    try:
        ok = run_steps(demo)
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
    finally:
        if not ok or args.keep_logs:
            say(f"process logs kept in {harness.keep_logs(demo)}")
        cleanup(demo)
    if ok:
        say("demo-migrate finished: everything it started has been cleaned up")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
