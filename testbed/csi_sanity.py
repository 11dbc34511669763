"""`make sanity`: the kubernetes-csi conformance suite (csi-sanity) against this plugin.

Starts the Heketi test server in `gluster` mode (real volumes on the local
glusterd) and `glusterfs-provisioner node --controller-service` on a unix socket,
runs the csi-sanity binary given with `--csi-sanity` against it, prints its
summary, and cleans up: the plugin, any mount left under the kubelet directory,
any Gluster volume the run left behind. Exits with csi-sanity's exit code.

Not part of `make test`: csi-sanity is built from kubernetes-csi/csi-test on the
machine (see ../shared/peers/README.md), never a dependency of this repository.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import yaml

from provisioner.csi import csi_pb2, csi_pb2_grpc, mounter
from testbed.heketi.server import HeketiTestServer

#: How long the plugin may take to answer Probe after it starts.
STARTUP_DEADLINE_S = 60.0
#: How long the whole csi-sanity run may take (about 80 specs on real GlusterFS).
RUN_DEADLINE_S = 3600.0
#: Volume size csi-sanity asks for (its default, 10 GiB, only costs time here).
TEST_VOLUME_BYTES = 1 << 30
#: Node id the plugin reports.
NODE_ID = "sanity-node"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csi-sanity", required=True, help="path of the csi-sanity binary")
    parser.add_argument("--workdir", help="keep files here (default: a temporary directory)")
    parser.add_argument(
        "extra", nargs="*", help="more csi-sanity flags after --, e.g. -- --ginkgo.focus=Node"
    )
    return parser.parse_args(argv)


def start_plugin(base: Path, heketi_url: str, key: str) -> subprocess.Popen[bytes]:
    """`node --controller-service` as its own process, answering Probe."""
    endpoint = f"unix://{base}/plugin/csi.sock"
    argv = [
        sys.executable,
        "-m",
        "provisioner",
        "--log-format",
        "json",
        "node",
        "--node-id",
        NODE_ID,
        "--endpoint",
        endpoint,
        "--kubelet-dir",
        str(base / "kubelet"),
        "--mount-log-dir",
        str(base / "mount-logs"),
        "--state-dir",
        str(base / "state"),
        "--controller-service",
        "--heketi-url",
        heketi_url,
    ]
    with (base / "plugin.log").open("wb") as log_file:
        process = subprocess.Popen(
            argv, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "HEKETI_KEY": key}
        )
    with grpc.insecure_channel(endpoint) as channel:
        identity = csi_pb2_grpc.IdentityStub(channel)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(grpc.RpcError):
                identity.Probe(csi_pb2.ProbeRequest(), timeout=1)
                return process
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the plugin did not answer Probe; log: {base / 'plugin.log'}")


def sanity_argv(binary: str, base: Path, extra: list[str]) -> list[str]:
    """csi-sanity's command line: mount and staging dirs inside the plugin's kubelet dir."""
    params = base / "params.yaml"
    params.write_text(yaml.safe_dump({"volumetype": "none"}))
    pods = base / "kubelet" / "pods" / "sanity"
    plugins = base / "kubelet" / "plugins" / "sanity"
    for parent in (pods, plugins):
        parent.mkdir(parents=True, exist_ok=True)  # csi-sanity makes only the last component
    return [
        binary,
        f"--csi.endpoint=unix://{base}/plugin/csi.sock",
        f"--csi.mountdir={pods}/mount",
        f"--csi.stagingdir={plugins}/staging",
        f"--csi.testvolumeparameters={params}",
        f"--csi.testvolumesize={TEST_VOLUME_BYTES}",
        f"--csi.junitfile={base / 'junit.xml'}",
        *extra,
    ]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def unmount_under(directory: Path) -> None:
    """Unmount whatever a failed spec left mounted below `directory`, deepest first."""
    inside = [
        mount.mount_point
        for mount in mounter.SystemMounter().table().entries
        if mount.mount_point.startswith(f"{directory}/")
    ]
    for mount_point in reversed(inside):
        subprocess.run(["umount", mount_point], capture_output=True, timeout=60, check=False)


def delete_leftovers(heketi: HeketiTestServer) -> None:
    """Gluster volumes the run left behind (a failed DeleteVolume) are removed."""
    for volume in heketi.volumes():
        name = str(volume["name"])
        for argv in (["volume", "stop", name, "force"], ["volume", "delete", name]):
            subprocess.run(
                ["gluster", "--mode=script", *argv], capture_output=True, timeout=120, check=False
            )
        print(f"removed leftover Gluster volume {name}", flush=True)


@contextlib.contextmanager
def workdir(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path).resolve()
        return
    with tempfile.TemporaryDirectory(prefix="csi-sanity-") as folder:
        yield Path(folder)


def run(args: argparse.Namespace) -> int:
    key = secrets.token_hex(16)
    with workdir(args.workdir) as base:
        (base / "kubelet").mkdir(exist_ok=True)
        with HeketiTestServer(admin_key=key, mode="gluster", bricks_dir=str(base / "bricks")) as hk:
            plugin = start_plugin(base, hk.url, key)
            try:
                argv = sanity_argv(args.csi_sanity, base, list(args.extra))
                return subprocess.run(argv, timeout=RUN_DEADLINE_S, check=False).returncode
            finally:
                stop(plugin)
                unmount_under(base / "kubelet")
                delete_leftovers(hk)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(parse_args(argv)))


if __name__ == "__main__":
    main()
