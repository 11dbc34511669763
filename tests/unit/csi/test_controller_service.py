"""CSI Controller decisions over an in-memory Heketi (the real client is tested over HTTP)."""

from collections.abc import Callable, Sequence

from provisioner.core.storageclass import DEFAULT_DURABILITY
from provisioner.core.volume_naming import csi_volume_name
from provisioner.core.volumes import VolumeService
from provisioner.csi import csi_pb2
from provisioner.csi.controller_service import ControllerService
from provisioner.csi.heketi_access import HeketiDefaults
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.errors import HeketiNameInUse
from provisioner.heketi.name_cache import VolumeIdentity
from provisioner.heketi.types import Volume, VolumeCreateRequest

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
HEKETI_URL = "http://heketi.example.com:8080"


class MemoryHeketi:
    """Volumes in a dict; `during_next_list` runs inside the next listing of names."""

    def __init__(self) -> None:
        self.volumes: dict[str, Volume] = {}
        self.during_next_list: Callable[[], object] | None = None

    def find_volume_by_name(self, name: str) -> Volume | None:
        return next((v for v in self.volumes.values() if v.name == name), None)

    def create_volume(self, request: VolumeCreateRequest) -> Volume:
        if self.find_volume_by_name(request.name) is not None:  # as Heketi: names are unique
            raise HeketiNameInUse(f"Name {request.name} already in use", status=409)
        volume = Volume(
            id=f"{len(self.volumes) + 1:032x}", name=request.name, size_gib=request.size_gib,
            cluster="c1", durability=request.durability, gid=request.gid, hosts=("g1",),
            device=f"g1:{request.name}", backup_volfile_servers=(), options=(),
        )  # fmt: skip
        self.volumes[volume.id] = volume
        return volume

    def volume_identities(self) -> dict[str, VolumeIdentity]:
        snapshot = {i: VolumeIdentity(v.name, v.gid) for i, v in self.volumes.items()}
        hook, self.during_next_list = self.during_next_list, None
        if hook is not None:
            hook()
        return snapshot  # taken before anything else happened

    def list_volume_ids(self) -> list[str]:
        return list(self.volumes)

    def list_volumes(self) -> list[Volume]:
        return list(self.volumes.values())

    def get_volume(self, volume_id: str) -> Volume:
        return self.volumes[volume_id]

    def get_volumes(self, volume_ids: Sequence[str]) -> list[Volume]:
        return [self.volumes[i] for i in volume_ids if i in self.volumes]

    def free_space_gib(self, clusters: Sequence[str] = (), **_: object) -> int:
        return 100

    def placement_domains(self, clusters: Sequence[str] = (), **_: object) -> int:
        return 3

    def expand_volume(self, volume_id: str, *, add_gib: int) -> Volume:
        raise NotImplementedError

    def delete_volume(self, volume_id: str) -> None:
        del self.volumes[volume_id]


def controller_over(heketi: MemoryHeketi) -> ControllerService:
    def clients(_config: HeketiConfig) -> MemoryHeketi:
        return heketi

    return ControllerService(
        volumes=VolumeService(clients=clients), heketi=HeketiDefaults(url=HEKETI_URL)
    )


def create(controller: ControllerService, name: str, gid_max: int = 3009) -> csi_pb2.Volume:
    capability = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.MULTI_NODE_MULTI_WRITER),
    )
    request = csi_pb2.CreateVolumeRequest(
        name=name,
        volume_capabilities=[capability],
        parameters={"gidMin": "3000", "gidMax": str(gid_max)},
    )
    volume: csi_pb2.Volume = controller.CreateVolume(request, None).volume
    return volume


def test_a_create_that_listed_before_another_finished_still_gets_its_own_gid() -> None:
    heketi = MemoryHeketi()
    controller = controller_over(heketi)
    # While "late" lists Heketi's volumes, "early" is created and finishes: the
    # list "late" got back does not show the GID "early" now holds.
    heketi.during_next_list = lambda: create(controller, "early")
    late = create(controller, "late")
    gids = {volume.name: volume.gid for volume in heketi.volumes.values()}
    assert set(gids) == {"early", "late"}
    assert gids["early"] != gids["late"]
    assert late.volume_context["gid"] == str(gids["late"])


def test_a_create_that_finds_its_volume_made_meanwhile_gives_the_reserved_gid_back() -> None:
    heketi = MemoryHeketi()
    controller = controller_over(heketi)
    # Someone else (the PVC controller, an earlier attempt) makes the volume of this
    # name, with GID 3005, while this create lists: it then finds that volume.
    heketi.during_next_list = lambda: heketi.create_volume(
        VolumeCreateRequest(
            size_gib=1,
            name=csi_volume_name("made-meanwhile"),
            durability=DEFAULT_DURABILITY,
            gid=3005,
        )
    )
    assert create(controller, "made-meanwhile").volume_context["gid"] == "3005"
    # 3000 was given back: a range of that one GID can hand it out again.
    assert create(controller, "next", gid_max=3000).volume_context["gid"] == "3000"


def test_a_deleted_volumes_gid_is_handed_out_again_once_the_range_wraps() -> None:
    heketi = MemoryHeketi()
    controller = controller_over(heketi)
    first = create(controller, "first", gid_max=3001)
    assert create(controller, "second", gid_max=3001).volume_context["gid"] == "3001"
    controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=first.volume_id), None)
    assert create(controller, "third", gid_max=3001).volume_context["gid"] == "3000"


def test_gids_continue_from_the_last_one_handed_out_across_creates() -> None:
    heketi = MemoryHeketi()
    controller = controller_over(heketi)
    first = create(controller, "first")
    create(controller, "second")
    controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=first.volume_id), None)
    # 3000 is free again, but the search goes on from where the last one ended.
    assert create(controller, "third").volume_context["gid"] == "3002"
