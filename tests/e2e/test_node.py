"""`make e2e-node`: the seed's scenario on a real node, through deploy/ and our image.

kubelet and containerd run the controller, the node plugin (with the real
node-driver-registrar) and the app pods; GlusterFS is this
machine's glusterd behind the Heketi test server in gluster mode. Skipped unless
E2E_NODE_KUBECONFIG names the cluster (tests/e2e/node_cluster.py lists the settings).
The steps run in order and share one installation; each prints its time.
"""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import yaml

from testbed.net import free_port
from tests.e2e import node_cluster as nc
from tests.e2e.system_state import gluster_volumes
from tests.polling import wait_for

pytestmark = pytest.mark.gluster
T = TypeVar("T")

HEKETI_KEY = "e2e-node-admin-key"
CLAIM = "glusterfs-claim"
#: Generous: image pulls are local, but two shared cores make every pod start slow.
POD_DEADLINE_S = 180.0
BOUND_DEADLINE_S = 120.0
#: The scenario's app writes one line this often while the node plugin is replaced.
LOOP_INTERVAL_S = 0.2


#: kubectl is a process per call: poll at a pace it keeps up with.
KUBECTL_POLL_S = 0.5


def _poll(what: str, probe: Callable[[], T | None], *, timeout: float) -> T:
    return wait_for(what, probe, timeout=timeout, interval=KUBECTL_POLL_S)


@dataclass
class System:
    kubectl: nc.Kubectl
    settings: nc.Settings
    namespace: str
    steps: nc.Steps
    volumes: set[str]  # Gluster volumes the scenario made


def _base_image() -> str:
    deployment = next(o for o in nc.rendered(_no_rig()) if o["kind"] == "DaemonSet")
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def _no_rig() -> nc.Settings:
    return nc.Settings(kubeconfig="", api="", image="", rollout_image="", app_image="")


def _settings() -> nc.Settings:
    app_image = nc.example("pod.yaml")["spec"]["containers"][0]["image"]
    settings = nc.Settings.from_environment(_base_image(), app_image)
    if settings is None:
        pytest.skip("set E2E_NODE_KUBECONFIG to run on a real node (make e2e-node)")
    return settings


@pytest.fixture(scope="module")
def settings() -> nc.Settings:
    return _settings()


@pytest.fixture(scope="module")
def heketi_url(settings: nc.Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Heketi test server in gluster mode, on the host network (where the rig's
    controller runs)."""
    work = tmp_path_factory.mktemp("e2e-node-heketi")
    key_file = work / "admin.key"
    key_file.write_text(HEKETI_KEY)
    port = free_port()
    argv = [
        sys.executable, "-m", "testbed.heketi", "--listen", f"127.0.0.1:{port}",
        "--admin-key-file", str(key_file), "--mode", "gluster", "--bricks-dir", str(work / "b"),
    ]  # fmt: skip
    with (work / "heketi.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def system(settings: nc.Settings, heketi_url: str) -> Iterator[System]:
    kubectl = nc.Kubectl(settings.kubeconfig)
    steps = nc.Steps()
    namespace = f"e2e-node-{os.getpid()}"
    objects = nc.rendered(settings)
    with steps.step("install: kubectl apply of deploy/ (rig patches only), class, secret"):
        kubectl.apply(*objects)
        kubectl.apply(*_class_and_secret(heketi_url), _namespace(namespace))
        _wait_installed(kubectl)
    system = System(kubectl, settings, namespace, steps, set())
    try:
        yield system
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=true", check=False)
        kubectl.run("delete", "storageclass", "glusterfs", "--ignore-not-found", check=False)
        kubectl.run("delete", "-f", "-", "--wait=true", check=False,
                    stdin=yaml.safe_dump_all(objects))  # fmt: skip
        print("\n[e2e-node] steps:", *(f"{n}: {t:.1f} s" for n, t in steps.times), sep="\n  ")


def _namespace(name: str) -> nc.Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _class_and_secret(heketi_url: str) -> list[nc.Obj]:
    storage_class = nc.example("storageclass.yaml")
    storage_class["parameters"]["resturl"] = heketi_url
    secret = nc.example("heketi-secret.yaml")
    secret.pop("data", None)
    secret["stringData"] = {"key": HEKETI_KEY}
    return [storage_class, secret]


def _wait_installed(kubectl: nc.Kubectl) -> None:
    for kind, name in (("daemonset", nc.NODE_PLUGIN), ("deployment", nc.CONTROLLER)):
        kubectl.run("rollout", "status", kind, name, "-n", nc.NAMESPACE, "--timeout=300s")
    node = kubectl.items("nodes")[0]["metadata"]["name"]

    def registered() -> bool:
        csinode = kubectl.get("csinode", node)
        drivers = (csinode or {}).get("spec", {}).get("drivers") or []
        return any(d["name"] == "glusterfs.csi.heketi.io" for d in drivers)

    _poll("the driver registered with kubelet (CSINode)", registered, timeout=POD_DEADLINE_S)


# ---------------------------------------------------------------------------- helpers


def _claim(system: System, name: str, size: str = "1Gi") -> nc.Obj:
    claim = nc.example("pvc.yaml")
    claim["metadata"] = {"name": name, "namespace": system.namespace}
    claim["spec"]["resources"]["requests"]["storage"] = size
    return claim


def _wait_bound(system: System, name: str) -> str:
    """The bound claim's volume name; also remembered for the final check."""

    def bound() -> str | None:
        claim = system.kubectl.get("pvc", name, system.namespace) or {}
        if claim.get("status", {}).get("phase") != "Bound":
            return None
        volume: str = claim["spec"]["volumeName"]
        return volume

    volume = _poll(f"claim {name} bound", bound, timeout=BOUND_DEADLINE_S)
    system.volumes.add(volume)  # the PV name is the Gluster volume's (pvc-<uid>)
    return str(volume)


def _pod(system: System, name: str, script: str, *, uid: int, read_only: bool = False) -> nc.Obj:
    """The example pod's shape (non-root, no capabilities) with another script."""
    pod = nc.example("pod.yaml")
    pod["metadata"] = {"name": name, "namespace": system.namespace}
    spec = pod["spec"]
    spec["restartPolicy"] = "Never"
    spec["securityContext"].update(runAsUser=uid, runAsGroup=uid)
    container = spec["containers"][0]
    container["image"] = system.settings.app_image
    container["command"] = ["sh", "-c", script]
    container["volumeMounts"][0]["readOnly"] = read_only
    spec["volumes"][0]["persistentVolumeClaim"]["claimName"] = CLAIM
    return pod


def _run_pod(system: System, pod: nc.Obj, *, until: str = "Running") -> str:
    """Start the pod and wait for the phase (Running, or Succeeded for one-shot pods)."""
    name = pod["metadata"]["name"]
    system.kubectl.apply(pod)

    def phase() -> str | None:
        found = system.kubectl.get("pod", name, system.namespace) or {}
        current: str | None = found.get("status", {}).get("phase")
        assert current != "Failed", system.kubectl.run("logs", name, "-n", system.namespace)
        return current if current == until else None

    _poll(f"pod {name} {until}", phase, timeout=POD_DEADLINE_S)
    return str(name)


def _logs(system: System, pod: str) -> str:
    return system.kubectl.run("logs", pod, "-n", system.namespace)


def _df_kib(system: System, pod: str) -> int:
    """Size of /data as the pod's `df -k` shows it."""
    out = system.kubectl.exec(pod, system.namespace, "df", "-k", "/data")
    return int(out.splitlines()[-1].split()[1])


def _fuse_client(volume: str) -> int | None:
    """PID of the host's GlusterFS FUSE client of `volume` (its --volfile-id)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ids = {f"--volfile-id={volume}".encode(), f"--volfile-id=/{volume}".encode()}
        if argv[0].endswith(b"glusterfs") and ids & set(argv):
            return int(proc.name)
    return None


def _plugin_pod(system: System) -> nc.Obj | None:
    pods = system.kubectl.items(
        "pods", "-n", nc.NAMESPACE, "-l", "app.kubernetes.io/component=node"
    )
    ready = [
        p for p in pods
        if p["metadata"].get("deletionTimestamp") is None
        and all(s.get("ready") for s in p.get("status", {}).get("containerStatuses", [{}]))
    ]  # fmt: skip
    return ready[0] if len(ready) == 1 else None


def _replaced(system: System, old: nc.Obj) -> bool:
    new = _plugin_pod(system)
    return new is not None and new["metadata"]["uid"] != old["metadata"]["uid"]


def _lines_written(system: System, pod: str) -> int:
    return int(system.kubectl.exec(pod, system.namespace, "sh", "-c", "wc -l < /data/loop.txt"))


def _writes_go_on(system: System, pod: str, after: int) -> int:
    """Wait until the loop has written past `after` lines; the new count."""
    return int(_poll(
        "the app to keep writing",
        lambda: (lines := _lines_written(system, pod)) > after + 5 and lines,
        timeout=60,
    ))  # fmt: skip


# ---------------------------------------------------------------------------- the scenario


def test_the_node_plugin_starts_fuse_clients_outside_its_cgroups(system: System) -> None:
    logs = system.kubectl.run(
        "logs", f"daemonset/{nc.NODE_PLUGIN}", "-n", nc.NAMESPACE, "-c", "glusterfs-plugin"
    )
    started = [line for line in logs.splitlines() if "outside the plugin's cgroups" in line]
    assert started, logs
    print(f"[e2e-node] {started[0]}")


def test_the_example_claim_is_bound_to_a_new_gluster_volume(system: System) -> None:
    with system.steps.step("claim: examples/pvc.yaml bound"):
        system.kubectl.apply(_claim(system, CLAIM))
        volume = _wait_bound(system, CLAIM)
    assert volume in gluster_volumes()


def test_a_non_root_pod_writes_to_data(system: System) -> None:
    with system.steps.step("pod-1 (UID 1000) writes /data/hello.txt"):
        script = "echo written by pod-1 > /data/hello.txt && id && exec sleep 3600"
        _run_pod(system, _pod(system, "pod-1", script, uid=1000))
        logs = wait_for("pod-1's output", lambda: _logs(system, "pod-1"), timeout=30)
    assert "uid=1000" in logs
    out = system.kubectl.exec("pod-1", system.namespace, "ls", "-ln", "/data/hello.txt")
    assert out.split()[2] == "1000"


def test_a_second_pod_reads_what_the_first_wrote(system: System) -> None:
    with system.steps.step("pod-2 (UID 2001) reads it"):
        pod = _pod(system, "pod-2", "cat /data/hello.txt", uid=2001)
        _run_pod(system, pod, until="Succeeded")
    assert _logs(system, "pod-2").strip() == "written by pod-1"


def test_a_read_only_mount_reads_and_refuses_writes(system: System) -> None:
    with system.steps.step("pod-ro: read-only mount"):
        script = "cat /data/hello.txt; touch /data/ro-write 2>&1; echo touch=$?"
        _run_pod(
            system, _pod(system, "pod-ro", script, uid=1000, read_only=True), until="Succeeded"
        )
    logs = _logs(system, "pod-ro")
    assert "written by pod-1" in logs
    assert "Read-only file system" in logs and "touch=1" in logs


def test_an_expanded_claim_gets_a_second_brick_set_the_pod_keeps_using(system: System) -> None:
    before = _df_kib(system, "pod-1")
    with system.steps.step("expand 1Gi -> 2Gi: PVC capacity, 2 x 3 bricks, pod-1 writes on"):
        system.kubectl.run(
            "patch", "pvc", CLAIM, "-n", system.namespace, "--type", "merge",
            "-p", '{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}',
        )  # fmt: skip

        def capacity() -> bool:
            claim = system.kubectl.get("pvc", CLAIM, system.namespace) or {}
            return bool(claim.get("status", {}).get("capacity", {}).get("storage") == "2Gi")

        _poll("PVC capacity 2Gi", capacity, timeout=BOUND_DEADLINE_S)
    volume = _wait_bound(system, CLAIM)
    info = subprocess.run(
        ["gluster", "--mode=script", "volume", "info", volume],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "Number of Bricks: 2 x 3 = 6" in info
    system.kubectl.exec("pod-1", system.namespace, "sh", "-c", "seq 1 1000 > /data/after-expand")
    out = system.kubectl.exec("pod-1", system.namespace, "wc", "-l", "/data/after-expand")
    assert out.split()[0] == "1000"
    # Not asserted: the test server's bricks are directories on one file system, so df
    # shows that file system's size, not the volume's (Heketi's bricks are LVs of their size).
    print(f"[e2e-node] df /data in pod-1: {before} KiB -> {_df_kib(system, 'pod-1')} KiB")


def test_an_app_keeps_writing_through_a_node_plugin_delete_and_a_rollout(system: System) -> None:
    script = (
        'i=0; while :; do echo "$i" >> /data/loop.txt || { echo "write $i failed"; exit 1; }; '
        f"i=$((i+1)); sleep {LOOP_INTERVAL_S}; done"
    )
    system.kubectl.run("exec", "pod-1", "-n", system.namespace, "--", "rm", "-f", "/data/loop.txt")
    writer = _run_pod(system, _pod(system, "writer", script, uid=1000))
    volume = next(iter(system.volumes))
    client = _fuse_client(volume)
    assert client is not None, f"no FUSE client of {volume} on this node"
    fuse_cgroups = Path(f"/proc/{client}/cgroup").read_text()
    assert "glusterfs-csi-fuse" in fuse_cgroups
    lines = _writes_go_on(system, writer, 0)
    with system.steps.step("node plugin pod deleted while the app writes"):
        old = _poll("the node plugin pod", lambda: _plugin_pod(system), timeout=60)
        system.kubectl.run("delete", "pod", old["metadata"]["name"], "-n", nc.NAMESPACE)
        _poll("a new node plugin pod ready", lambda: _replaced(system, old), timeout=POD_DEADLINE_S)
        lines = _writes_go_on(system, writer, lines)
    with system.steps.step("DaemonSet rollout to a new image tag while the app writes"):
        system.kubectl.run(
            "set", "image", f"daemonset/{nc.NODE_PLUGIN}", "-n", nc.NAMESPACE,
            f"glusterfs-plugin={system.settings.rollout_image}",
        )  # fmt: skip
        system.kubectl.run(
            "rollout", "status", f"daemonset/{nc.NODE_PLUGIN}", "-n", nc.NAMESPACE,
            "--timeout=300s",
        )  # fmt: skip
        lines = _writes_go_on(system, writer, lines)
    written = system.kubectl.exec(writer, system.namespace, "cat", "/data/loop.txt").split()
    assert "failed" not in _logs(system, writer)
    assert written[: len(written) - 1] == [str(i) for i in range(len(written) - 1)]
    assert _fuse_client(volume) == client, "the same FUSE client served throughout"
    print(f"[e2e-node] {len(written)} writes, none failed; FUSE client {client} throughout")
    print("[e2e-node] its cgroups:", " ".join(sorted(set(fuse_cgroups.split()))))


def test_claims_made_while_the_controller_pod_is_deleted_are_all_bound(system: System) -> None:
    names = [f"burst-{i}" for i in range(4)]
    with system.steps.step("controller pod deleted mid-burst of 4 claims; all bound"):
        controller = system.kubectl.items(
            "pods", "-n", nc.NAMESPACE, "-l", "app.kubernetes.io/component=controller"
        )
        system.kubectl.apply(*(_claim(system, n) for n in names[:2]))
        system.kubectl.run("delete", "pod", "-n", nc.NAMESPACE, "--wait=false",
                           *(p["metadata"]["name"] for p in controller))  # fmt: skip
        system.kubectl.apply(*(_claim(system, n) for n in names[2:]))
        for name in names:
            _wait_bound(system, name)


def test_deleting_pods_and_claims_leaves_nothing_behind(system: System) -> None:
    with system.steps.step("pods and claims deleted: no PV, Gluster volume, mount or client"):
        system.kubectl.run("delete", "pods", "--all", "-n", system.namespace, "--wait=true")
        system.kubectl.run("delete", "pvc", "--all", "-n", system.namespace, "--wait=true")

        def gone() -> bool:
            pvs = {pv["metadata"]["name"] for pv in system.kubectl.items("pv")}
            return not (system.volumes & pvs) and not (system.volumes & gluster_volumes())

        _poll("PVs and Gluster volumes gone", gone, timeout=BOUND_DEADLINE_S)
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert not [v for v in system.volumes if f":{v} " in mountinfo or f"/{v} " in mountinfo]
    assert all(_fuse_client(v) is None for v in system.volumes)
