"""TLS-encrypted Gluster volumes on the real glusterd, mounted with the client's own files.

A replica volume with `client.ssl on` and `server.ssl on`: its bricks load their
certificate, key and CA from where Debian's glusterfs looks (/usr/lib/ssl/glusterfs.pem,
.key, .ca — put there only if absent, for as long as this module runs, under a lock, and
removed again); the node plugin gets the client's own files from a separate directory
(`--gluster-tls-dir`, files 0400 as the Secret mounts them). The same plugin mounts a
volume without TLS unchanged; a plugin whose directory is empty answers staging a TLS
volume with FAILED_PRECONDITION naming the missing file.
"""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from provisioner.csi import gluster_tls
from testbed.tls import make_gluster_peers
from tests.conftest import GlusterHost
from tests.integration.csi.conftest import (
    VOLUME_PREFIX,
    GlusterVolume,
    Plugin,
    delete_volume,
    gluster,
    start_plugin,
    stop_plugin,
    unmount_everything_under,
)
from tests.integration.csi.test_node_mounts import Kubelet

pytestmark = pytest.mark.gluster

#: Where Debian's glusterfs (this machine's, and our image's) loads its TLS files.
SSL_DIR = gluster_tls.DEFAULT_DIR
#: Held while this module's files are in SSL_DIR (another run of it waits).
LOCK = Path("/tmp/glusterfs-provisioner-tls-test.lock")


@dataclass(frozen=True)
class TlsWorld:
    tls_volume: GlusterVolume
    plain_volume: GlusterVolume
    client_dir: Path


@contextlib.contextmanager
def _server_files(server_dir: Path) -> Iterator[None]:
    """The bricks' files in SSL_DIR while the block runs: only where none is, removed after."""
    created: list[Path] = []
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for source in sorted(server_dir.iterdir()):
                destination = SSL_DIR / source.name
                try:
                    descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pytest.skip(f"{destination} exists and is not this test's; left as it is")
                created.append(destination)
                with os.fdopen(descriptor, "wb") as copy:
                    copy.write(source.read_bytes())
            yield
        finally:
            for path in created:
                path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def tls_world(
    gluster_host: GlusterHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsWorld]:
    base = tmp_path_factory.mktemp("tnode-tls")
    peers = make_gluster_peers(base / "pki", ("server", "client"))
    for path in peers["client"].files:
        path.chmod(0o400)  # as the Secret's defaultMode in deploy/components/gluster-tls
    host, mount_host = gluster_host.brick_host, gluster_host.mount_host
    names = {label: f"{VOLUME_PREFIX}{label}-{os.getpid()}" for label in ("tls", "plain")}
    made: list[str] = []
    (base / "bricks").mkdir()
    with _server_files(peers["server"].directory):
        try:
            for label, name in names.items():
                made.append(name)
                bricks = [f"{host}:{base}/bricks/{label}-{n}" for n in range(3)]
                gluster("volume", "create", name, "replica", "3", *bricks, "force")
                if label == "tls":
                    gluster("volume", "set", name, "client.ssl", "on")
                    gluster("volume", "set", name, "server.ssl", "on")
                gluster("volume", "start", name)
            yield TlsWorld(
                *(GlusterVolume(n, {"servers": f"{mount_host},{host}", "volume": n})
                  for n in names.values()),
                client_dir=peers["client"].directory,
            )  # fmt: skip
        finally:
            for name in made:
                delete_volume(name)


@contextlib.contextmanager
def _plugin(base: Path, tls_dir: Path) -> Iterator[Plugin]:
    running = start_plugin(base, extra=["--gluster-tls-dir", str(tls_dir)])
    try:
        yield running
    finally:
        stop_plugin(running)
        unmount_everything_under(running.kubelet_dir)


def _client_log(plugin_base: Path, volume: GlusterVolume) -> str:
    return (plugin_base / "mount-logs" / f"{volume.name}.log").read_text(errors="replace")


def test_a_tls_volume_is_staged_published_written_and_read_back_with_the_clients_own_files(
    tls_world: TlsWorld, tmp_path: Path
) -> None:
    with _plugin(tmp_path, tls_world.client_dir) as plugin:
        kubelet = Kubelet(plugin, tls_world.tls_volume, "tls")
        kubelet.stage()
        writer, reader = kubelet.publish("pod-1"), kubelet.publish("pod-2")
        (writer / "secret.txt").write_text("encrypted on the wire")
        assert (reader / "secret.txt").read_text() == "encrypted on the wire"
        for target in (writer, reader):
            kubelet.unpublish(target)
        kubelet.unstage()
    log = _client_log(tmp_path, tls_world.tls_volume)  # glusterfs 10.3's own words
    assert "IO path is ENABLED" in log
    assert f"option transport.socket.ssl-own-cert {tls_world.client_dir}/glusterfs.pem" in log
    assert "could not load" not in log


def test_a_volume_without_tls_mounts_as_before_beside_the_tls_dir(
    tls_world: TlsWorld, tmp_path: Path
) -> None:
    with _plugin(tmp_path, tls_world.client_dir) as plugin:
        kubelet = Kubelet(plugin, tls_world.plain_volume, "plain")
        kubelet.stage()
        target = kubelet.publish("pod-1")
        (target / "plain.txt").write_text("no TLS here")
        assert (kubelet.staging / "plain.txt").read_text() == "no TLS here"
        kubelet.unpublish(target)
        kubelet.unstage()
    assert "IO path is ENABLED" not in _client_log(tmp_path, tls_world.plain_volume)


def test_without_the_clients_files_staging_a_tls_volume_names_the_missing_file(
    tls_world: TlsWorld, tmp_path: Path
) -> None:
    empty = tmp_path / "no-secret-here"
    empty.mkdir()
    with _plugin(tmp_path, empty) as plugin:
        kubelet = Kubelet(plugin, tls_world.tls_volume, "no-files")
        with pytest.raises(grpc.RpcError) as raised:
            plugin.node.NodeStageVolume(kubelet.stage_request(), timeout=90)
        assert not kubelet.staging.exists()
    assert raised.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    details = raised.value.details() or ""
    assert f"certificate {empty}/glusterfs.pem is missing" in details
    assert "Secret glusterfs-tls" in details
