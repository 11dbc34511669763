"""Sidecar mode over the socket: `glusterfs-provisioner node --controller-service
--heketi-url URL` as external-provisioner and external-resizer use it, on any Heketi."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from provisioner.csi import csi_pb2, csi_pb2_grpc
from provisioner.heketi.client import HeketiClient
from testbed.controller_world import Target
from tests.contract.conftest import remove_our_volumes, unique

GIB = 1 << 30
STARTUP_DEADLINE = 30.0
Mode = csi_pb2.VolumeCapability.AccessMode.Mode
CAPABILITY = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.MULTI_NODE_MULTI_WRITER),
)


@dataclass(frozen=True)
class Sidecar:
    process: subprocess.Popen[bytes]
    channel: grpc.Channel
    log: Path

    @property
    def controller(self) -> csi_pb2_grpc.ControllerStub:
        # The generated stubs carry no annotations (provisioner/csi/csi_pb2_grpc.py).
        return csi_pb2_grpc.ControllerStub(self.channel)  # type: ignore[no-untyped-call]


def _start(target: Target, base: Path) -> Sidecar:
    endpoint = f"unix://{base}/csi.sock"
    env = {**os.environ, "HEKETI_KEY": target.key}
    argv = [
        sys.executable, "-m", "provisioner", "--log-format", "json",
        "node", "--node-id", "contract-node", "--endpoint", endpoint,
        "--kubelet-dir", str(base / "kubelet"), "--mount-log-dir", str(base / "mount-logs"),
        "--state-dir", str(base / "state"), "--shutdown-grace", "5",
        "--controller-service", "--heketi-url", target.url,
    ]  # fmt: skip
    log = base / "sidecar.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    sidecar = Sidecar(process, grpc.insecure_channel(endpoint), log)
    deadline = time.monotonic() + STARTUP_DEADLINE
    identity = csi_pb2_grpc.IdentityStub(sidecar.channel)  # type: ignore[no-untyped-call]
    while True:
        if process.poll() is not None:
            raise AssertionError(f"plugin exited early:\n{log.read_text()}")
        try:
            identity.Probe(csi_pb2.ProbeRequest(), timeout=1)
            return sidecar
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise AssertionError(f"plugin did not start:\n{log.read_text()}") from None
            time.sleep(0.05)


@pytest.fixture(scope="module")
def sidecar(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    running = _start(target, tmp_path_factory.mktemp("sidecar"))
    yield running
    running.channel.close()
    running.process.terminate()
    try:
        running.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait(timeout=10)
    remove_our_volumes(HeketiClient(target.config()))


def create(sidecar: Sidecar, name: str, gib: int = 1) -> csi_pb2.Volume:
    request = csi_pb2.CreateVolumeRequest(
        name=name,
        capacity_range=csi_pb2.CapacityRange(required_bytes=gib * GIB),
        volume_capabilities=[CAPABILITY],
    )
    volume: csi_pb2.Volume = sidecar.controller.CreateVolume(request, timeout=60).volume
    return volume


def listed_ids(sidecar: Sidecar, *, page: int) -> list[str]:
    ids: list[str] = []
    token = ""
    for _ in range(10_000):  # a deadline in pages
        answer = sidecar.controller.ListVolumes(
            csi_pb2.ListVolumesRequest(max_entries=page, starting_token=token), timeout=60
        )
        assert page == 0 or len(answer.entries) <= page
        ids += [e.volume.volume_id for e in answer.entries]
        token = answer.next_token
        if not token:
            return ids
    raise AssertionError("ListVolumes never ended")


def test_create_volume_twice_with_one_name_gives_one_volume(sidecar: Sidecar) -> None:
    name = unique("twice")
    first, second = create(sidecar, name), create(sidecar, name)
    assert first.volume_id == second.volume_id and first.capacity_bytes == GIB


def test_list_volumes_pages_through_every_volume_once(sidecar: Sidecar) -> None:
    made = {create(sidecar, unique("listed")).volume_id for _ in range(3)}
    ids = listed_ids(sidecar, page=2)
    assert len(ids) == len(set(ids)) and made <= set(ids)
    assert set(listed_ids(sidecar, page=0)) == set(ids)


def test_get_capacity_reports_free_space_of_online_devices(sidecar: Sidecar) -> None:
    answer = sidecar.controller.GetCapacity(
        csi_pb2.GetCapacityRequest(volume_capabilities=[CAPABILITY]), timeout=60
    )
    assert answer.available_capacity > 0 and answer.available_capacity % GIB == 0
    assert answer.minimum_volume_size.value == GIB


def test_expand_grows_the_volume(sidecar: Sidecar) -> None:
    volume = create(sidecar, unique("grown"))
    answer = sidecar.controller.ControllerExpandVolume(
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id,
            capacity_range=csi_pb2.CapacityRange(required_bytes=3 * GIB),
            volume_capability=CAPABILITY,
        ),
        timeout=60,
    )
    assert answer.capacity_bytes == 3 * GIB and not answer.node_expansion_required


def test_delete_volume_twice_succeeds_and_the_volume_is_gone(sidecar: Sidecar) -> None:
    volume = create(sidecar, unique("deleted"))
    for _ in range(2):
        sidecar.controller.DeleteVolume(
            csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id), timeout=60
        )
    assert volume.volume_id not in listed_ids(sidecar, page=0)
