"""FUSE mounts across node-plugin restarts (real glusterd, real FUSE mounts).

The plugin runs as a "container" would: in its own PID and mount namespace
(`unshare --pid --fork --mount-proc`), with the kubelet directory shared both ways
(Bidirectional mount propagation). Killing the namespace's init kills every process
in it, exactly as a container restart does.
"""

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from provisioner.csi import csi_pb2, csi_pb2_grpc
from provisioner.csi.fuse_cgroups import prepare
from tests.conftest import GlusterHost
from tests.integration.csi import cgroup_tree
from tests.integration.csi.conftest import (
    Plugin,
    _wait_ready,
    create_volume,
    delete_volume,
    unmount_everything_under,
)

pytestmark = pytest.mark.gluster

VOLUME = "hard-restart-{pid}"
WRITER = csi_pb2.VolumeCapability.AccessMode.Mode.MULTI_NODE_MULTI_WRITER
DEADLINE = 20.0


@dataclass(frozen=True)
class Sandbox:
    base: Path
    kubelet_dir: Path
    volume_context: dict[str, str]


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def sandbox(
    gluster_host: GlusterHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandbox]:
    base = tmp_path_factory.mktemp("restart")
    kubelet_dir = base / "kubelet"
    kubelet_dir.mkdir()
    # The kubelet dir is a shared mount, as with Bidirectional propagation in a DaemonSet.
    name = VOLUME.format(pid=os.getpid())
    bricks = base / "bricks"
    bricks.mkdir()
    try:
        _run(["mount", "--bind", str(kubelet_dir), str(kubelet_dir)])
        _run(["mount", "--make-shared", str(kubelet_dir)])
        create_volume(name, [f"{gluster_host.brick_host}:{bricks}/b0"])
        yield Sandbox(base, kubelet_dir, {"servers": gluster_host.mount_host, "volume": name})
    finally:
        unmount_everything_under(kubelet_dir)
        subprocess.run(["umount", str(kubelet_dir)], capture_output=True, timeout=30, check=False)
        delete_volume(name)


def _start(sandbox: Sandbox, tag: str, *, wrapper: list[str], extra: list[str] = ()) -> Plugin:  # type: ignore[assignment]
    endpoint = f"unix://{sandbox.base}/plugin/csi.sock"
    log_path = sandbox.base / f"plugin-{tag}.log"
    argv = [
        *wrapper, sys.executable, "-m", "provisioner", "--log-format", "json", "node",
        "--node-id", "restart-node", "--endpoint", endpoint,
        "--kubelet-dir", str(sandbox.kubelet_dir),
        "--mount-log-dir", str(sandbox.base / "mount-logs"), *extra,
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
    channel = grpc.insecure_channel(endpoint)
    plugin = Plugin(process, endpoint, sandbox.kubelet_dir, log_path, channel)
    _wait_ready(plugin)
    return plugin


def _start_in_namespace(sandbox: Sandbox, tag: str) -> Plugin:
    """The plugin in its own PID + mount namespace, kubelet dir propagating both ways."""
    unshare = ["unshare", "--pid", "--fork", "--mount-proc", "--propagation", "unchanged", "--"]
    return _start(sandbox, tag, wrapper=unshare)


def _wait_for_log(plugin: Plugin, text: str) -> None:
    """Wait for the plugin's background start-up repair to report (a line in its log)."""
    deadline = time.monotonic() + DEADLINE
    while text not in plugin.log():
        assert time.monotonic() < deadline, f"no {text!r} in the plugin log:\n{plugin.log()}"
        time.sleep(0.05)


def _namespace_init(plugin: Plugin) -> int:
    """PID (in our namespace) of the plugin namespace's init: unshare's only child."""
    children = Path(f"/proc/{plugin.process.pid}/task/{plugin.process.pid}/children")
    (pid,) = children.read_text().split()
    return int(pid)


def _kill_namespace(plugin: Plugin) -> None:
    """SIGKILL the namespace's init: the kernel then kills every process in it."""
    os.kill(_namespace_init(plugin), signal.SIGKILL)
    plugin.process.wait(timeout=DEADLINE)
    plugin.channel.close()


def _stat_errno(path: Path) -> int | None:
    try:
        os.stat(path)
    except OSError as error:
        return error.errno
    return None


def _capability(flags: tuple[str, ...] = ()) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(mount_flags=list(flags)),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=WRITER),
    )


@dataclass(frozen=True)
class Paths:
    volume_id: str
    staging: Path
    target: Path


def _paths(sandbox: Sandbox, label: str) -> Paths:
    staging = sandbox.kubelet_dir / "plugins" / "kubernetes.io" / "csi" / label / "globalmount"
    target = sandbox.kubelet_dir / "pods" / label / "volumes" / "mount"
    staging.parent.mkdir(parents=True)
    target.parent.mkdir(parents=True)
    return Paths(sandbox.volume_context["volume"], staging, target)


def _stage_and_publish(
    plugin: Plugin, sandbox: Sandbox, paths: Paths, *, flags: tuple[str, ...] = ()
) -> None:
    node = csi_pb2_grpc.NodeStub(plugin.channel)
    node.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=paths.volume_id, staging_target_path=str(paths.staging),
            volume_capability=_capability(flags), volume_context=sandbox.volume_context,
        ), timeout=DEADLINE,
    )  # fmt: skip
    node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=paths.volume_id, staging_target_path=str(paths.staging),
            target_path=str(paths.target), volume_capability=_capability(),
        ), timeout=DEADLINE,
    )  # fmt: skip


def _unpublish_and_unstage(plugin: Plugin, paths: Paths) -> None:
    node = csi_pb2_grpc.NodeStub(plugin.channel)
    node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(
            volume_id=paths.volume_id, target_path=str(paths.target)
        ), timeout=DEADLINE,
    )  # fmt: skip
    node.NodeUnstageVolume(
        csi_pb2.NodeUnstageVolumeRequest(
            volume_id=paths.volume_id, staging_target_path=str(paths.staging)
        ), timeout=DEADLINE,
    )  # fmt: skip


def test_published_path_reads_and_writes_after_the_plugin_namespace_is_killed(
    sandbox: Sandbox,
) -> None:
    paths = _paths(sandbox, "ns-kill")
    first = _start_in_namespace(sandbox, "first")
    _stage_and_publish(first, sandbox, paths)
    (paths.target / "before").write_text("written before the restart")

    _kill_namespace(first)
    assert _stat_errno(paths.target) == errno.ENOTCONN  # the FUSE client really died with it

    second = _start_in_namespace(sandbox, "second")  # no Node* call on this one
    try:
        _wait_for_log(second, "stale mount check done")
        assert (paths.target / "before").read_text() == "written before the restart"
        (paths.target / "after").write_text("written after the restart")
        assert (paths.staging / "after").read_text() == "written after the restart"
        assert '"repaired": 1, "rebound": 1' in second.log()
    finally:
        _unpublish_and_unstage(second, paths)
        _kill_namespace(second)


def _fuse_client(mount_point: Path) -> int:
    """PID of the glusterfs FUSE client serving `mount_point` (the last word of its argv)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"glusterfs") and argv[-1] == os.fsencode(mount_point):
            return int(proc.name)
    raise AssertionError(f"no glusterfs client serves {mount_point}")


def _wait_gone(pid: int) -> None:
    """Until the process has exited (gone, or a zombie: its FUSE connection is closed)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        assert time.monotonic() < deadline, f"process {pid} did not exit"
        time.sleep(0.05)


def test_a_mount_whose_client_just_died_is_repaired_by_a_plugin_restarted_at_once(
    sandbox: Sandbox,
) -> None:
    paths = _paths(sandbox, "fresh-kill")
    first = _start(sandbox, "fresh-1", wrapper=[])
    # A long attribute cache makes the race certain: for ten minutes the kernel answers a
    # stat of the mount without asking its client (Gluster's default is one second).
    _stage_and_publish(first, sandbox, paths, flags=("attribute-timeout=600",))
    (paths.target / "before").write_text("written before the client died")
    os.stat(paths.staging)
    first.process.terminate()
    first.process.wait(timeout=DEADLINE)
    first.channel.close()

    client = _fuse_client(paths.staging)
    os.kill(client, signal.SIGKILL)
    _wait_gone(client)
    os.stat(paths.staging)  # the race: stat still says all is well ...
    assert _statvfs_errno(paths.staging) in (errno.ENOTCONN, errno.ECONNABORTED)  # ... it is gone

    second = _start(sandbox, "fresh-2", wrapper=[])  # restarted at once, no Node* call
    try:
        _wait_for_log(second, "stale mount check done")
        assert '"repaired": 1, "rebound": 1' in second.log()
        assert (paths.target / "before").read_text() == "written before the client died"
        (paths.target / "after").write_text("written after the repair")
        assert (paths.staging / "after").read_text() == "written after the repair"
    finally:
        _unpublish_and_unstage(second, paths)
        second.process.terminate()
        second.process.wait(timeout=DEADLINE)
        second.channel.close()


def _statvfs_errno(path: Path) -> int | None:
    try:
        os.statvfs(path)
    except OSError as error:
        return error.errno
    return None


@pytest.fixture
def cgroups() -> Iterator[tuple[Path, Path]]:
    """A "container" cgroup for the plugin and the cgroup for FUSE clients (cgroup v2)."""
    root = Path("/sys/fs/cgroup/unified")
    if not (root / "cgroup.procs").exists():
        root = Path("/sys/fs/cgroup")
    container = root / f"hard-plugin-{os.getpid()}"
    fuse = root / f"hard-fuse-{os.getpid()}"
    try:
        container.mkdir()
    except OSError as error:
        pytest.skip(f"needs a writable cgroup v2 hierarchy at {root}: {error.strerror}")
    if not (container / "cgroup.kill").exists():
        container.rmdir()
        pytest.skip(f"{root} is not a cgroup v2 hierarchy with cgroup.kill (Linux >= 5.14)")
    try:
        yield container, fuse
    finally:
        cgroup_tree.remove([container, fuse], deadline=DEADLINE)


def _pids(group: Path) -> set[int]:
    return {int(pid) for pid in (group / "cgroup.procs").read_text().split()}


def test_fuse_clients_outlive_a_killed_plugin_container_with_fuse_cgroup(
    sandbox: Sandbox, cgroups: tuple[Path, Path]
) -> None:
    container, fuse = cgroups
    in_container = [sys.executable, "-m", "provisioner.csi.cgroup_exec", str(container), "--"]
    paths = _paths(sandbox, "cgroup-kill")
    # Our own cgroup namespace stands in for the host's /proc/1/ns/cgroup.
    escape = [
        "--fuse-cgroup",
        str(fuse),
        "--fuse-cgroup-namespace",
        f"/proc/{os.getpid()}/ns/cgroup",
    ]
    first = _start(sandbox, "c1", wrapper=in_container, extra=escape)
    _stage_and_publish(first, sandbox, paths)
    (paths.target / "before").write_text("written before the restart")
    clients = _pids(fuse)
    assert clients and not clients & _pids(container)

    (container / "cgroup.kill").write_text("1")  # what the runtime does on a restart
    first.process.wait(timeout=DEADLINE)
    first.channel.close()

    assert _pids(fuse) == clients  # the same FUSE client is still serving
    _still_served_then_found_healthy(sandbox, paths, "c2", wrapper=in_container, extra=escape)


def _still_served_then_found_healthy(
    sandbox: Sandbox, paths: Paths, tag: str, *, wrapper: list[str], extra: list[str]
) -> None:
    """With no plugin running the published path still reads and writes; a plugin
    started again finds the mount healthy (nothing to repair)."""
    assert (paths.target / "before").read_text() == "written before the restart"
    (paths.target / "after").write_text("written with no plugin running")
    second = _start(sandbox, tag, wrapper=wrapper, extra=extra)
    try:
        _wait_for_log(second, "stale mount check done")
        assert '"healthy": 1' in second.log()
    finally:
        _unpublish_and_unstage(second, paths)
        second.process.terminate()
        second.process.wait(timeout=DEADLINE)
        second.channel.close()


@dataclass(frozen=True)
class V1Cgroups:
    container: tuple[Path, ...]  # the plugin "container": one cgroup per hierarchy
    fuse: Path  # --fuse-cgroup


@pytest.fixture
def v1_cgroups(tmp_path: Path) -> Iterator[V1Cgroups]:
    """A container's cgroups as runc makes them on cgroup v1 (one per hierarchy) and the
    --fuse-cgroup below a root that stands for the host's /sys/fs/cgroup."""
    if not cgroup_tree.v1_hierarchies():
        pytest.skip("needs a cgroup v1 (or hybrid) node")
    root = cgroup_tree.own_cgroup_root(tmp_path / "cgroup")
    fuse = root / f"hard-fuse-v1-{os.getpid()}"
    container = prepare(root / f"hard-plugin-v1-{os.getpid()}").directories
    try:
        yield V1Cgroups(container, fuse)
    finally:
        cgroup_tree.remove([*container, *(entry / fuse.name for entry in root.iterdir())])


def _with_file(cgroups: tuple[Path, ...], name: str) -> Path:
    (found,) = [group for group in cgroups if (group / name).exists()]
    return found


def _kill_container_v1(container: tuple[Path, ...]) -> None:
    """What runc does to a stopped host-PID container on cgroup v1: freeze it, SIGKILL every
    process listed in its devices cgroup, thaw; then wait until the cgroup is empty."""
    freezer, devices = _with_file(container, "freezer.state"), _with_file(container, "devices.list")
    (freezer / "freezer.state").write_text("FROZEN")
    for pid in _pids(devices):
        os.kill(pid, signal.SIGKILL)
    (freezer / "freezer.state").write_text("THAWED")
    deadline = time.monotonic() + DEADLINE
    while _pids(devices):
        assert time.monotonic() < deadline, f"{devices} still has {_pids(devices)}"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_fuse_clients_outlive_a_killed_plugin_container_on_cgroup_v1(
    sandbox: Sandbox, v1_cgroups: V1Cgroups
) -> None:
    in_container = [
        sys.executable, "-m", "provisioner.csi.cgroup_exec", *map(str, v1_cgroups.container), "--",
    ]  # fmt: skip
    paths = _paths(sandbox, "cgroup-v1-kill")
    escape = ["--fuse-cgroup", str(v1_cgroups.fuse)]
    first = _start(sandbox, "v1-1", wrapper=in_container, extra=escape)
    _stage_and_publish(first, sandbox, paths)
    (paths.target / "before").write_text("written before the restart")
    client = _fuse_client(paths.staging)

    _kill_container_v1(v1_cgroups.container)
    first.process.wait(timeout=DEADLINE)
    first.channel.close()

    assert _alive(client), "the same FUSE client is still serving"
    for controllers, path in cgroup_tree.cgroups_of(client).items():
        if controllers in cgroup_tree.v1_hierarchies():
            assert path.endswith(f"/{v1_cgroups.fuse.name}"), controllers
    _still_served_then_found_healthy(sandbox, paths, "v1-2", wrapper=in_container, extra=escape)
