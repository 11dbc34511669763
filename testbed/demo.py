"""`make demo`: the whole journey of a claim on one machine, for real where it can be.

Starts the Heketi test server (`gluster` mode: real volumes on the local glusterd),
the Kubernetes API test server (with its in-cluster PV binder), the controller and
the node plugin as separate processes, applies the example StorageClass, Secret and
PVC from deploy/examples, then plays kubelet over the plugin's CSI socket: stage,
publish for a pod, write, show the file on the bricks, publish for a second pod, read
it back, expand the claim, delete it and show the Gluster volume gone.

Everything it started is cleaned up on success, on failure and on Ctrl-C; a failure
names its step and exits non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import yaml

from provisioner import names
from provisioner.csi import csi_pb2
from testbed.demo_harness import (
    Demo,
    StepFailed,
    apply,
    check_alive,
    detail,
    http_ok,
    keep_logs,
    kube,
    mount_capability,
    node_stub,
    raise_interrupt,
    remove_leftover_volumes,
    say,
    start_process,
    stop_processes,
    unmount_leftovers,
    wait_for,
)
from testbed.kube.server import kubeconfig
from testbed.net import free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "deploy" / "examples"
NODE_ID = "demo-node"
GIB = 1024**3


def claim_path(demo: Demo) -> str:
    meta = demo.pvc["metadata"]
    return f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims/{meta['name']}"


def get_claim(demo: Demo) -> dict[str, Any] | None:
    claim: dict[str, Any] | None = kube(demo, "GET", claim_path(demo))
    return claim


def get_pv(demo: Demo) -> dict[str, Any] | None:
    pv: dict[str, Any] | None = kube(demo, "GET", f"/api/v1/persistentvolumes/{demo.pv_name}")
    return pv


def print_get_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        detail("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def short_modes(modes: list[str]) -> str:
    abbrev = {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }
    return ",".join(abbrev.get(mode, mode) for mode in modes)


# ---------------------------------------------------------------- CSI (playing kubelet)


def pod_target(demo: Demo, pod_uid: str) -> Path:
    return (
        demo.kubelet_dir
        / "pods"
        / pod_uid
        / "volumes"
        / "kubernetes.io~csi"
        / demo.pv_name
        / "mount"
    )


def publish_for_pod(demo: Demo, pod_uid: str) -> Path:
    target = pod_target(demo, pod_uid)
    target.parent.mkdir(parents=True, exist_ok=True)  # kubelet creates the target's parent
    assert demo.staged is not None
    with node_stub(demo) as node:
        node.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id=demo.volume_id,
                staging_target_path=str(demo.staged),
                target_path=str(target),
                volume_capability=mount_capability(),
                volume_context=demo.volume_context,
            ),
            timeout=30,
        )
    demo.published.append(target)
    return target


def unpublish(demo: Demo, target: Path) -> None:
    with node_stub(demo) as node:
        node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id=demo.volume_id, target_path=str(target)),
            timeout=30,
        )
    demo.published.remove(target)


# ---------------------------------------------------------------- the steps


def step_start(demo: Demo) -> None:
    demo.bricks_dir = demo.workdir / "bricks"
    demo.kubelet_dir = demo.workdir / "kubelet"
    demo.socket_path = demo.workdir / "csi" / "csi.sock"
    for folder in (demo.bricks_dir, demo.kubelet_dir, demo.socket_path.parent):
        folder.mkdir(parents=True)
    start_test_servers(demo)
    kubeconfig_path = write_kubeconfig(demo)
    metrics_port = free_port()
    start_provisioner(demo, kubeconfig_path, metrics_port)
    wait_for(
        "the controller to be ready",
        lambda: check_alive(demo) and http_ok(f"http://127.0.0.1:{metrics_port}/readyz"),
    )
    wait_for("the node plugin socket", lambda: check_alive(demo) and demo.socket_path.exists())


def start_test_servers(demo: Demo) -> None:
    """The Heketi test server on real Gluster and the Kubernetes API test server."""
    heketi_port, kube_port = free_port(), free_port()
    demo.heketi_url = f"http://127.0.0.1:{heketi_port}"
    demo.kube_url = f"http://127.0.0.1:{kube_port}"
    key_file = demo.workdir / "heketi-admin.key"
    key_file.write_text(demo.heketi_key)
    key_file.chmod(0o600)
    heketi = ["--listen", f"127.0.0.1:{heketi_port}", "--admin-key-file", str(key_file)]
    gluster = ["--mode", "gluster", "--bricks-dir", str(demo.bricks_dir)]
    start_process(demo, "heketi", [sys.executable, "-m", "testbed.heketi", *heketi, *gluster])
    kube_argv = ["--listen", f"127.0.0.1:{kube_port}", "--binder", *demo.kube_flags]
    start_process(demo, "kube-apiserver", [sys.executable, "-m", "testbed.kube", *kube_argv])
    wait_for("the Heketi test server", lambda: http_ok(f"{demo.heketi_url}/hello"))
    wait_for("the Kubernetes API test server", lambda: http_ok(f"{demo.kube_url}/api"))


def start_provisioner(demo: Demo, kubeconfig_path: Path, metrics_port: int) -> None:
    """The controller and the node plugin, as the Deployment and DaemonSet run them."""
    provisioner = [sys.executable, "-m", "provisioner"]
    controller = ["--kubeconfig", str(kubeconfig_path)]
    metrics = ["--metrics-address", f"127.0.0.1:{metrics_port}"]
    start_process(demo, "controller", [*provisioner, "controller", *controller, *metrics])
    node = ["--endpoint", f"unix://{demo.socket_path}", "--node-id", NODE_ID]
    kubelet = ["--kubelet-dir", str(demo.kubelet_dir)]
    start_process(demo, "node-plugin", [*provisioner, "node", *node, *kubelet])


def write_kubeconfig(demo: Demo) -> Path:
    path = demo.workdir / "kubeconfig"
    path.write_text(json.dumps(kubeconfig(demo.kube_url)))
    return path


def load_example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return loaded


def step_apply(demo: Demo) -> None:
    secret = load_example("heketi-secret.yaml")
    secret["stringData"] = {"key": demo.heketi_key}
    storage_class = load_example("storageclass.yaml")
    storage_class["parameters"]["resturl"] = demo.heketi_url
    claim = load_example("pvc.yaml")
    namespaces = {secret["metadata"]["namespace"], claim["metadata"]["namespace"]}
    for namespace in sorted(namespaces):
        if kube(demo, "GET", f"/api/v1/namespaces/{namespace}") is None:
            apply(demo, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    detail(f"StorageClass resturl → {demo.heketi_url} (the local Heketi test server)")
    apply(demo, secret)
    apply(demo, storage_class)
    demo.pvc = apply(demo, claim)
    demo.pv_name = f"pvc-{demo.pvc['metadata']['uid']}"


def step_wait_bound(demo: Demo) -> None:
    last_phase = ""

    def bound() -> bool:
        nonlocal last_phase
        check_alive(demo)
        claim = get_claim(demo) or {}
        phase: str = claim.get("status", {}).get("phase", "")
        if phase != last_phase:
            detail(f"claim phase: {phase or '(none)'}")
            last_phase = phase
        return phase == "Bound"

    wait_for("the claim to be Bound", bound)
    claim = get_claim(demo)
    pv = get_pv(demo)
    if claim is None or pv is None:
        raise StepFailed(f"claim bound but PV {demo.pv_name} not found")
    demo.pvc = claim
    csi = pv["spec"]["csi"]
    demo.volume_id = csi["volumeHandle"]
    demo.volume_context = dict(csi.get("volumeAttributes", {}))
    demo.gluster_volume = demo.volume_context[names.CTX_VOLUME]
    show_claim_and_volume(demo, claim, pv)


def show_claim_and_volume(demo: Demo, claim: dict[str, Any], pv: dict[str, Any]) -> None:
    say("  $ kubectl get pvc")
    print_get_table(
        [
            [
                claim["metadata"]["name"],
                claim["status"].get("phase", ""),
                claim["spec"].get("volumeName", ""),
                claim["status"].get("capacity", {}).get("storage", ""),
                short_modes(claim["status"].get("accessModes", [])),
                claim["spec"].get("storageClassName", ""),
            ]
        ],
        ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS"],
    )
    say("  $ kubectl get pv")
    ref = pv["spec"].get("claimRef", {})
    print_get_table(
        [
            [
                pv["metadata"]["name"],
                pv["spec"]["capacity"]["storage"],
                short_modes(pv["spec"].get("accessModes", [])),
                pv["spec"].get("persistentVolumeReclaimPolicy", ""),
                pv.get("status", {}).get("phase", ""),
                f"{ref.get('namespace')}/{ref.get('name')}",
                pv["spec"].get("storageClassName", ""),
            ]
        ],
        ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS"],
    )
    detail(
        f"Heketi volume {demo.volume_id} = Gluster volume {demo.gluster_volume} "
        f"on {demo.volume_context.get(names.CTX_SERVERS)}"
    )
    detail(
        f"gid {pv['metadata'].get('annotations', {}).get(names.ANN_GID)} "
        f"(pv.beta.kubernetes.io/gid)"
    )


def step_pod_writes(demo: Demo) -> None:
    staging = (
        demo.kubelet_dir
        / "plugins"
        / "kubernetes.io"
        / "csi"
        / names.DRIVER_NAME
        / demo.volume_id
        / "globalmount"
    )
    staging.mkdir(parents=True)  # kubelet creates the staging directory
    with node_stub(demo) as node:
        node.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id=demo.volume_id,
                staging_target_path=str(staging),
                volume_capability=mount_capability(),
                volume_context=demo.volume_context,
            ),
            timeout=60,
        )
    demo.staged = staging
    detail(f"NodeStageVolume: FUSE mount at {staging}")
    target = publish_for_pod(demo, "pod-1")
    detail(f"NodePublishVolume: pod-1 sees the volume at {target}")
    (target / "hello.txt").write_text("written by pod-1 through the FUSE mount\n")
    detail("pod-1 wrote hello.txt")
    on_bricks = sorted(demo.bricks_dir.rglob("hello.txt"))
    if not on_bricks:
        raise StepFailed(f"hello.txt not found on any brick under {demo.bricks_dir}")
    for path in on_bricks:
        detail(f"on brick: {path}")
    unpublish(demo, target)
    detail("NodeUnpublishVolume: pod-1 gone")


def step_second_pod_reads(demo: Demo) -> None:
    target = publish_for_pod(demo, "pod-2")
    content = (target / "hello.txt").read_text()
    detail(f"pod-2 reads hello.txt: {content.strip()!r}")
    if "pod-1" not in content:
        raise StepFailed("pod-2 did not see what pod-1 wrote")
    unpublish(demo, target)
    assert demo.staged is not None
    with node_stub(demo) as node:
        node.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(
                volume_id=demo.volume_id, staging_target_path=str(demo.staged)
            ),
            timeout=30,
        )
    demo.staged = None
    detail("NodeUnpublishVolume + NodeUnstageVolume: node clean")


def step_expand(demo: Demo) -> None:
    patch = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    kube(demo, "PATCH", claim_path(demo), patch, content_type="application/merge-patch+json")
    detail("claim request raised to 2Gi")

    def grown() -> str | None:
        check_alive(demo)
        claim = get_claim(demo) or {}
        capacity: str | None = claim.get("status", {}).get("capacity", {}).get("storage")
        return capacity if capacity in ("2Gi", str(2 * GIB)) else None

    capacity = wait_for("status.capacity to reach 2Gi", grown)
    pv = get_pv(demo) or {}
    detail(f"PVC capacity {capacity}, PV capacity {pv['spec']['capacity']['storage']}")


def gluster_volume_exists(name: str) -> bool:
    result = subprocess.run(
        ["gluster", "--mode=script", "volume", "info", name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


def step_delete(demo: Demo) -> None:
    if not gluster_volume_exists(demo.gluster_volume):
        raise StepFailed(f"gluster volume {demo.gluster_volume} missing before delete")
    kube(demo, "DELETE", claim_path(demo))
    detail("claim deleted")
    wait_for(f"PV {demo.pv_name} to be deleted", lambda: check_alive(demo) and get_pv(demo) is None)
    detail(f"PV {demo.pv_name} deleted (reclaimPolicy Delete)")
    wait_for(
        f"gluster volume {demo.gluster_volume} to be gone",
        lambda: not gluster_volume_exists(demo.gluster_volume),
    )
    detail(f"$ gluster volume info {demo.gluster_volume} → does not exist")


STEPS: list[tuple[str, Callable[[Demo], None]]] = [
    ("start Heketi, the Kubernetes API, the controller and the node plugin", step_start),
    ("apply the example Secret, StorageClass and PVC", step_apply),
    ("wait for the claim to be bound", step_wait_bound),
    ("pod-1: stage, publish, write a file", step_pod_writes),
    ("pod-2: publish again, read it back", step_second_pod_reads),
    ("expand the claim to 2Gi", step_expand),
    ("delete the claim", step_delete),
]


# ---------------------------------------------------------------- cleanup and main


def cleanup(demo: Demo) -> None:
    for target in list(demo.published):
        with contextlib.suppress(Exception):
            unpublish(demo, target)
    if demo.staged is not None:
        with contextlib.suppress(Exception), node_stub(demo) as node:
            node.NodeUnstageVolume(
                csi_pb2.NodeUnstageVolumeRequest(
                    volume_id=demo.volume_id, staging_target_path=str(demo.staged)
                ),
                timeout=30,
            )
    stop_processes(demo)
    unmount_leftovers(demo.workdir)
    remove_leftover_volumes(demo)
    shutil.rmtree(demo.workdir, ignore_errors=True)


def run_steps(demo: Demo) -> str | None:
    """Runs every step; returns the name of the failing step, or None."""
    for number, (title, step) in enumerate(STEPS, start=1):
        say(f"[{number}/{len(STEPS)}] {title}")
        started = time.monotonic()
        try:
            step(demo)
        except (StepFailed, grpc.RpcError, OSError, AssertionError) as err:
            message = err.details() if isinstance(err, grpc.RpcError) else str(err)
            say(f"FAILED at step {number} ({title}): {message}")
            return title
        elapsed = time.monotonic() - started
        demo.timings.append((title, elapsed))
        detail(f"done in {elapsed:.2f}s")
    return None


def summary(demo: Demo) -> None:
    say("Summary")
    for title, elapsed in demo.timings:
        detail(f"{elapsed:6.2f}s  {title}")
    detail(f"{sum(t for _, t in demo.timings):6.2f}s  total")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="copy the processes' logs to a folder that outlives the demo",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("make demo needs root (GlusterFS bricks and FUSE mounts)", file=sys.stderr)
        return 2
    demo = Demo(workdir=Path(tempfile.mkdtemp(prefix="gp-demo-")))
    signal.signal(signal.SIGTERM, raise_interrupt)
    failed: str | None = None
    try:
        failed = run_steps(demo)
    except KeyboardInterrupt:
        failed = "interrupted"
        say("interrupted: cleaning up")
    finally:
        if failed or args.keep_logs:
            say(f"process logs kept in {keep_logs(demo)}")
        cleanup(demo)
    if failed:
        return 1
    summary(demo)
    say("demo finished: everything it started has been cleaned up")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
