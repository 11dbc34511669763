"""Gluster mode: the Heketi test server makes real volumes on the local glusterd."""

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.heketi import (
    Durability,
    HeketiClient,
    HeketiConfig,
    HeketiOperationFailed,
    VolumeCreateRequest,
)
from testbed.heketi.server import HeketiTestServer
from tests.conftest import GlusterHost

pytestmark = pytest.mark.gluster

KEY = "gluster-mode-tests-admin-key-0123456789"


def gluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["gluster", "--mode=script", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Volume names for one test; whatever is left of them is stopped and deleted."""
    made: list[str] = []
    yield made
    for name in made:
        if gluster("volume", "info", name).returncode == 0:
            gluster("volume", "stop", name, "force")
            gluster("volume", "delete", name)


@pytest.fixture
def served(
    gluster_host: GlusterHost, tmp_path: Path
) -> Iterator[tuple[HeketiTestServer, HeketiClient]]:
    with HeketiTestServer(
        admin_key=KEY, mode="gluster", bricks_dir=str(tmp_path / "bricks")
    ) as srv:
        client = HeketiClient(
            HeketiConfig(url=srv.url, key=KEY, poll_initial=0.05, operation_deadline=240)
        )
        yield srv, client
        client.close()


@pytest.fixture
def heketi(served: tuple[HeketiTestServer, HeketiClient]) -> HeketiClient:
    return served[1]


def new_name(names: list[str]) -> str:
    name = f"theketi-{uuid.uuid4().hex[:10]}"
    names.append(name)
    return name


def replica_3(name: str, *, gid: int = 0, options: tuple[str, ...] = ()) -> VolumeCreateRequest:
    return VolumeCreateRequest(
        size_gib=1,
        name=name,
        durability=Durability(type="replicate", replica=3),
        gid=gid,
        gluster_volume_options=options,
    )


def test_real_volume_is_created_mounted_expanded_and_deleted(
    heketi: HeketiClient,
    names: list[str],
    gluster_host: GlusterHost,
    tmp_path: Path,
) -> None:
    name = new_name(names)
    volume = heketi.create_volume(
        replica_3(name, gid=2345, options=("performance.rda-cache-limit 10MB",))
    )
    info = gluster("volume", "info", name).stdout
    assert "Status: Started" in info and "Number of Bricks: 1 x 3 = 3" in info
    assert f"Brick1: {gluster_host.brick_host}:" in info
    assert "performance.rda-cache-limit: 10MB" in info
    assert volume.hosts == (gluster_host.mount_host,)
    assert volume.device == f"{gluster_host.mount_host}:{name}"

    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "glusterfs", volume.device, str(mount_point)], check=True, timeout=60
    )
    try:
        (mount_point / "hello").write_text("from a heketi test volume")
        assert mount_point.stat().st_gid == 2345
    finally:
        subprocess.run(["umount", str(mount_point)], check=True, timeout=60)

    grown = heketi.expand_volume(volume.id, add_gib=1)
    assert grown.size_gib == 2
    assert "Number of Bricks: 2 x 3 = 6" in gluster("volume", "info", name).stdout

    heketi.delete_volume(volume.id)
    assert gluster("volume", "info", name).returncode != 0


def test_gluster_failure_fails_the_operation_with_glusters_message_and_rolls_back(
    heketi: HeketiClient,
    names: list[str],
) -> None:
    name = new_name(names)
    with pytest.raises(HeketiOperationFailed, match=r"no-such\.option"):
        heketi.create_volume(replica_3(name, options=("no-such.option on",)))
    assert gluster("volume", "info", name).returncode != 0
    assert heketi.find_volume_by_name(name) is None


def test_an_arbiter_volume_is_a_real_replica_3_arbiter_1_volume_with_heketis_brick_sizes(
    served: tuple[HeketiTestServer, HeketiClient],
    names: list[str],
    tmp_path: Path,
) -> None:
    server, heketi = served
    name = new_name(names)
    volume = heketi.create_volume(
        replica_3(name, options=("user.heketi.arbiter true", "user.heketi.average-file-size 32"))
    )
    info = gluster("volume", "info", name).stdout
    assert "Number of Bricks: 1 x (2 + 1) = 3" in info
    assert "Brick3: " in info and "(arbiter)" in info.split("Brick3: ")[1].splitlines()[0]
    # Heketi's sizes: two data bricks of the whole size, the arbiter 1 GiB / 32 KiB
    # per file = 32 MiB (the third brick of the set)
    (shown,) = server.volumes()
    bricks = {b["path"]: b["size"] for b in shown["bricks"]}
    arbiter_path = info.split("Brick3: ")[1].split(" ")[0].split(":", 1)[1]
    assert bricks.pop(arbiter_path.strip()) == 32 * 1024
    assert sorted(bricks.values()) == [1024 * 1024, 1024 * 1024]

    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "glusterfs", volume.device, str(mount_point)], check=True, timeout=60
    )
    try:
        (mount_point / "data").write_bytes(b"x" * 65536)
    finally:
        subprocess.run(["umount", str(mount_point)], check=True, timeout=60)
    brick_files = {Path(p).joinpath("data").stat().st_size for p in bricks} | {
        Path(arbiter_path.strip()).joinpath("data").stat().st_size
    }
    assert brick_files == {65536, 0}  # the arbiter holds the file's name, not its data

    assert heketi.expand_volume(volume.id, add_gib=1).size_gib == 2
    assert "Number of Bricks: 2 x (2 + 1) = 6" in gluster("volume", "info", name).stdout
    heketi.delete_volume(volume.id)


def _mounted_write_read(
    device: str, point: Path, *, write: tuple[str, str] | None = None, read: str | None = None
) -> str | None:
    """Mount `device` at `point`, read file `read`, then write `write` = (file, text)."""
    point.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "glusterfs", device, str(point)], check=True, timeout=60)
    try:
        seen = (point / read).read_text() if read is not None else None
        if write is not None:
            (point / write[0]).write_text(write[1])
        return seen
    finally:
        subprocess.run(["umount", str(point)], check=True, timeout=60)


def test_a_clone_is_a_real_gluster_volume_holding_the_sources_files(
    heketi: HeketiClient, names: list[str], tmp_path: Path
) -> None:
    source = heketi.create_volume(replica_3(new_name(names), gid=2468))
    _mounted_write_read(source.device, tmp_path / "s", write=("data.txt", "before the clone"))

    copy = heketi.clone_volume(source.id, name=new_name(names))
    seen = _mounted_write_read(
        copy.device, tmp_path / "c", write=("data.txt", "changed in the clone"), read="data.txt"
    )

    assert seen == "before the clone"
    assert _mounted_write_read(source.device, tmp_path / "s", read="data.txt") == (
        "before the clone"
    )
    info = gluster("volume", "info", copy.name).stdout
    assert "Status: Started" in info and "Number of Bricks: 1 x 3 = 3" in info
    assert copy.gid == 2468
    heketi.delete_volume(copy.id)
    assert gluster("volume", "info", copy.name).returncode != 0
    assert gluster("volume", "info", source.name).returncode == 0
