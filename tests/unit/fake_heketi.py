"""A recording in-memory stand-in for `HeketiClient` with explicit fault settings."""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from provisioner.heketi.errors import (
    HeketiError,
    HeketiNameInUse,
    HeketiNotFound,
    HeketiOutcomeUnknown,
)
from provisioner.heketi.name_cache import VolumeIdentity
from provisioner.heketi.placement import TagRule
from provisioner.heketi.types import Durability, Volume, VolumeCreateRequest

T = TypeVar("T")


@dataclass
class Fault:
    error: HeketiError
    #: The operation takes effect before the error is raised (an answer lost after commit).
    after_effect: bool = False


@dataclass
class FakeHeketi:
    """Implements the `HeketiClient` methods `VolumeService` uses; records every call."""

    volumes: dict[str, Volume] = field(default_factory=dict)
    calls: list[tuple[str, object]] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    #: Names Heketi is "still creating": hidden from reads, refused to creates.
    pending_names: set[str] = field(default_factory=set)
    free_gib: int = 100
    #: The `tag_rule` of each `free_space_gib` call.
    tag_rules: list[TagRule | None] = field(default_factory=list)
    #: What `placement_domains` answers: nodes (zones) with devices a placement allows.
    domains: int = 3
    #: Expands Heketi accepted and still runs: queue path → (volume id, GiB to add).
    running_expands: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: Expands that finished and whose queue entry was not read yet: queue path → volume id.
    finished_expands: dict[str, str] = field(default_factory=dict)
    #: For the next expand: None = normal; True/False = it is accepted and still runs when
    #: the caller gives up, with (True) or without (False) its queue path known.
    stall_next_expand: bool | None = None
    #: Operations Heketi runs for other clients (counted by `operations_pending`).
    other_operations: int = 0
    _ids: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, method: str, error: HeketiError, *, after_effect: bool = False) -> None:
        self.faults.setdefault(method, []).append(Fault(error, after_effect))

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    def add(self, name: str, size_gib: int = 1, *, gid: int = 0) -> Volume:
        volume = Volume(
            id=f"{next(self._ids):032x}",
            name=name,
            size_gib=size_gib,
            cluster="c" * 32,
            durability=Durability(type="replicate", replica=3),
            gid=gid,
            hosts=("10.0.0.1", "10.0.0.2"),
            device=f"10.0.0.1:{name}",
            backup_volfile_servers=("10.0.0.2",),
            options=(),
        )
        self.volumes[volume.id] = volume
        return volume

    def _act(self, method: str, arg: object, effect: Callable[[], T]) -> T:
        self.calls.append((method, arg))
        queue = self.faults.get(method)
        fault = queue.pop(0) if queue else None
        if fault is not None and not fault.after_effect:
            raise fault.error
        result = effect()
        if fault is not None:
            raise fault.error
        return result

    def _named(self, name: str) -> Volume | None:
        return next((v for v in self.volumes.values() if v.name == name), None)

    def find_volume_by_name(self, name: str) -> Volume | None:
        return self._act("find_volume_by_name", name, lambda: self._named(name))

    def create_volume(self, request: VolumeCreateRequest) -> Volume:
        def create() -> Volume:
            taken = self._named(request.name) is not None
            if taken or request.name in self.pending_names:
                raise HeketiNameInUse(f"Name {request.name} already in use", status=409)
            return self.add(request.name, request.size_gib, gid=request.gid)

        return self._act("create_volume", request, create)

    def clone_volume(self, volume_id: str, *, name: str) -> Volume:
        """As Heketi: same size, GID, cluster and durability; a taken name fails (glusterd)."""

        def clone() -> Volume:
            if volume_id not in self.volumes:
                raise HeketiNotFound("Id not found", status=404)
            if self._named(name) is not None or name in self.pending_names:
                raise HeketiNameInUse(f"Volume with name:{name} already exists", status=500)
            source = self.volumes[volume_id]
            made = self.add(name, source.size_gib, gid=source.gid)
            self.volumes[made.id] = replace(
                made, cluster=source.cluster, durability=source.durability
            )
            return self.volumes[made.id]

        return self._act("clone_volume", (volume_id, name), clone)

    def get_volume(self, volume_id: str) -> Volume:
        def get() -> Volume:
            if volume_id not in self.volumes:
                raise HeketiNotFound("Id not found", status=404)
            return self.volumes[volume_id]

        return self._act("get_volume", volume_id, get)

    def get_volumes(self, volume_ids: Sequence[str]) -> list[Volume]:
        return self._act(
            "get_volumes",
            tuple(volume_ids),
            lambda: [self.volumes[i] for i in volume_ids if i in self.volumes],
        )

    def list_volume_ids(self) -> list[str]:
        return self._act("list_volume_ids", None, lambda: list(self.volumes))

    def list_volumes(self) -> list[Volume]:
        return self._act("list_volumes", None, lambda: list(self.volumes.values()))

    def volume_identities(self) -> dict[str, VolumeIdentity]:
        return self._act(
            "volume_identities",
            None,
            lambda: {i: VolumeIdentity(v.name, v.gid) for i, v in self.volumes.items()},
        )

    def free_space_gib(
        self, clusters: Sequence[str] = (), *, tag_rule: TagRule | None = None
    ) -> int:
        self.tag_rules.append(tag_rule)
        return self._act("free_space_gib", tuple(clusters), lambda: self.free_gib)

    def placement_domains(
        self, clusters: Sequence[str] = (), *, tag_rule: TagRule | None = None, zones: bool = False
    ) -> int:
        return self._act(
            "placement_domains", (tuple(clusters), tag_rule, zones), lambda: self.domains
        )

    def expand_volume(self, volume_id: str, *, add_gib: int) -> Volume:
        if self.stall_next_expand is not None:
            answered, self.stall_next_expand = self.stall_next_expand, None
            self.calls.append(("expand_volume", (volume_id, add_gib)))
            path = f"/queue/{next(self._ids):032x}"
            self.running_expands[path] = (volume_id, add_gib)
            raise HeketiOutcomeUnknown(
                "Heketi did not finish the expand in time", queue_path=path if answered else None
            )

        def expand() -> Volume:
            volume = self.volumes[volume_id]
            self.volumes[volume_id] = replace(volume, size_gib=volume.size_gib + add_gib)
            return self.volumes[volume_id]

        return self._act("expand_volume", (volume_id, add_gib), expand)

    def finish_expands(self) -> None:
        """The running expands end: each grows its volume (as Heketi, a second expand
        accepted while the first ran grows it again)."""
        for path, (volume_id, add_gib) in self.running_expands.items():
            volume = self.volumes[volume_id]
            self.volumes[volume_id] = replace(volume, size_gib=volume.size_gib + add_gib)
            self.finished_expands[path] = volume_id
        self.running_expands.clear()

    def operations_pending(self) -> int:
        return self._act(
            "operations_pending", None, lambda: len(self.running_expands) + self.other_operations
        )

    def poll_expand(self, queue_path: str) -> Volume | None:
        def poll() -> Volume | None:
            if queue_path in self.running_expands:
                return None
            volume_id = self.finished_expands.pop(queue_path, None)
            if volume_id is None:
                raise HeketiOutcomeUnknown("queue entry unknown", status=404)
            return self.volumes[volume_id]

        return self._act("poll_expand", queue_path, poll)

    def delete_volume(self, volume_id: str) -> None:
        def delete() -> None:
            if self.volumes.pop(volume_id, None) is None:
                raise HeketiNotFound("Id not found", status=404)

        self._act("delete_volume", volume_id, delete)
