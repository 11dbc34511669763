"""What the demos (`make demo`, `make demo-migrate`) stand on: their shared state,
output, the Kubernetes API over plain HTTP, the processes they start and stop,
the CSI Node calls they make as kubelet would, and the clean-up after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from provisioner.csi import csi_pb2, csi_pb2_grpc

#: How long one step may take before the demo gives up on it.
STEP_DEADLINE_S = 60.0
#: Poll interval while waiting for the cluster to converge.
POLL_S = 0.1


class StepFailed(Exception):
    """A demo step did not reach its goal."""


@dataclass
class Demo:
    """State shared by the steps."""

    workdir: Path
    heketi_key: str = field(default_factory=lambda: secrets.token_hex(16))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    heketi_url: str = ""
    kube_url: str = ""
    socket_path: Path = Path()
    kubelet_dir: Path = Path()
    bricks_dir: Path = Path()
    pvc: dict[str, Any] = field(default_factory=dict)
    pv_name: str = ""
    volume_id: str = ""
    volume_context: dict[str, str] = field(default_factory=dict)
    gluster_volume: str = ""
    published: list[Path] = field(default_factory=list)
    staged: Path | None = None
    #: Extra flags of the Kubernetes API test server (demo_migrate adds --pv-protection).
    kube_flags: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- output helpers


def say(message: str) -> None:
    print(message, flush=True)


def detail(message: str) -> None:
    print(f"    {message}", flush=True)


def wait_for(what: str, check: Callable[[], Any], *, deadline_s: float = STEP_DEADLINE_S) -> Any:
    """Poll `check` until it returns something truthy; StepFailed after the deadline."""
    end = time.monotonic() + deadline_s
    last_error: Exception | None = None
    while time.monotonic() < end:
        try:
            result = check()
        except (OSError, urllib.error.URLError, ValueError, KeyError) as err:
            last_error = err
            result = None
        if result:
            return result
        time.sleep(POLL_S)
    suffix = f" (last error: {last_error})" if last_error else ""
    raise StepFailed(f"timed out after {deadline_s:.0f}s waiting for {what}{suffix}")


# ---------------------------------------------------------------- Kubernetes API (raw HTTP)


def kube(
    demo: Demo, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - local test server URL we started
        demo.kube_url + path, data=data, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        if err.code == 404 and method == "GET":
            return None
        message = json.loads(err.read() or b"{}").get("message", "")
        raise StepFailed(f"{method} {path} answered {err.code}: {message}") from err


def resource_path(obj: dict[str, Any]) -> str:
    kind = obj["kind"]
    plural = {
        "StorageClass": "storageclasses",
        "Secret": "secrets",
        "PersistentVolumeClaim": "persistentvolumeclaims",
        "Namespace": "namespaces",
    }[kind]
    prefix = "/apis/storage.k8s.io/v1" if kind == "StorageClass" else "/api/v1"
    namespace = obj["metadata"].get("namespace")
    if namespace and kind not in ("StorageClass", "Namespace"):
        return f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{prefix}/{plural}"


def apply(demo: Demo, obj: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = kube(demo, "POST", resource_path(obj), obj)
    meta = created["metadata"]
    detail(f"{created['kind'].lower()}/{meta['name']} created")
    return created


# ---------------------------------------------------------------- processes


def start_process(demo: Demo, name: str, argv: list[str]) -> None:
    log_path = demo.workdir / f"{name}.log"
    log_file = log_path.open("wb")
    env = {**os.environ, "LOG_FORMAT": "json"}
    demo.procs[name] = subprocess.Popen(
        argv, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    detail(f"{name}: pid {demo.procs[name].pid}, log {log_path}")


def check_alive(demo: Demo) -> bool:
    """True while every process we started runs; StepFailed with its log tail otherwise."""
    for name, proc in demo.procs.items():
        if proc.poll() is not None:
            tail = (demo.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise StepFailed(f"{name} exited with code {proc.returncode}:\n{tail}")
    return True


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URL
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def stop_processes(demo: Demo) -> None:
    for proc in demo.procs.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in demo.procs.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# ---------------------------------------------------------------- CSI (playing kubelet)


@contextlib.contextmanager
def node_stub(demo: Demo) -> Iterator[csi_pb2_grpc.NodeStub]:
    with grpc.insecure_channel(f"unix://{demo.socket_path}") as channel:
        yield csi_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]


def mount_capability(*, readonly: bool = False) -> csi_pb2.VolumeCapability:
    mode = (
        csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY
        if readonly
        else csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER
    )
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


# ---------------------------------------------------------------- after a failure


def unmount_leftovers(workdir: Path) -> None:
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    points = [line.split()[4] for line in mounts if line.split()[4].startswith(str(workdir))]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, timeout=30, check=False)


def remove_leftover_volumes(demo: Demo) -> None:
    """Deletes Gluster volumes whose bricks live in this demo's folder (after a failure)."""
    listing = subprocess.run(
        ["gluster", "--mode=script", "volume", "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    for name in listing.stdout.split():
        info = subprocess.run(
            ["gluster", "--mode=script", "volume", "info", name],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if str(demo.bricks_dir) in info.stdout and str(demo.bricks_dir) != ".":
            for action in (["stop", name, "force"], ["delete", name]):
                subprocess.run(
                    ["gluster", "--mode=script", "volume", *action],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
            detail(f"cleaned up leftover gluster volume {name}")


def raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM cleans up like Ctrl-C."""
    raise KeyboardInterrupt


def keep_logs(demo: Demo) -> Path:
    kept = Path(tempfile.mkdtemp(prefix="gp-demo-logs-"))
    for log in demo.workdir.glob("*.log"):
        shutil.copy(log, kept / log.name)
    return kept
