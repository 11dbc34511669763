"""Typed values exchanged with Heketi (requests we send, volumes we get back).

JSON field names follow Heketi's REST API (pkg/glusterfs/api/types.go): sizes in
GiB for volumes, `durability.{type, replicate.replica, disperse.{data,redundancy}}`,
`mount.glusterfs.{device, hosts, options.backup-volfile-servers}`.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

DurabilityType = Literal["replicate", "disperse", "none"]

_DURABILITY_TYPES: tuple[DurabilityType, ...] = ("replicate", "disperse", "none")
#: Heketi's ids (volumes, clusters, nodes, devices): 32 lowercase hexadecimal digits,
#: the hex form of 16 random bytes (v10.4.1 `pkg/utils/uuid.go` GenUUID).
_HEKETI_ID = re.compile(r"[0-9a-f]{32}")


def is_heketi_id(value: str) -> bool:
    """Whether `value` has the form of a Heketi id. Heketi writes ids in lower case and
    looks them up exactly; callers that accept an id in any case lower it first."""
    return _HEKETI_ID.fullmatch(value) is not None


@dataclass(frozen=True)
class Durability:
    """How Gluster protects the data: replica count, or erasure-coded data+redundancy."""

    type: DurabilityType
    replica: int = 0  # replicate
    data: int = 0  # disperse
    redundancy: int = 0  # disperse

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type}
        if self.type == "replicate":
            body["replicate"] = {"replica": self.replica}
        elif self.type == "disperse":
            body["disperse"] = {"data": self.data, "redundancy": self.redundancy}
        return body

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Durability":
        kind = raw.get("type") or "none"
        if kind not in _DURABILITY_TYPES:
            raise ValueError(f"unknown durability type {kind!r}")
        replicate = raw.get("replicate") or {}
        disperse = raw.get("disperse") or {}
        return cls(
            type=cast(DurabilityType, kind),
            replica=int(replicate.get("replica", 0)),
            data=int(disperse.get("data", 0)),
            redundancy=int(disperse.get("redundancy", 0)),
        )


@dataclass(frozen=True)
class Cluster:
    """A Heketi cluster (`GET /clusters/{id}`): its nodes and complete volumes."""

    id: str
    nodes: tuple[str, ...]
    volumes: tuple[str, ...]
    file: bool  # may hold file (GlusterFS) volumes
    block: bool  # may hold block-hosting volumes

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Cluster":
        """Parse Heketi's cluster info JSON; raises KeyError/TypeError if malformed."""
        return cls(
            id=str(raw["id"]),
            nodes=tuple(str(n) for n in raw.get("nodes") or ()),
            volumes=tuple(str(v) for v in raw.get("volumes") or ()),
            file=bool(raw.get("file", True)),
            block=bool(raw.get("block", False)),
        )


def online_free_kib(node: Mapping[str, Any]) -> int:
    """Free KiB of a node's online devices, 0 unless the node is online (`GET
    /nodes/{id}`: `state`, `devices[].state`, `devices[].storage.free`); raises
    KeyError/TypeError/ValueError/AttributeError if malformed."""
    if node.get("state", "online") != "online":
        return 0
    devices = [d for d in node.get("devices") or () if d.get("state", "online") == "online"]
    return sum(int(d["storage"]["free"]) for d in devices)


@dataclass(frozen=True)
class Volume:
    """A Heketi volume as the provisioner needs it."""

    id: str
    name: str  # Heketi volume name == Gluster volume name
    size_gib: int
    cluster: str
    durability: Durability
    gid: int
    hosts: tuple[str, ...]  # mount hosts, first = primary
    device: str  # "host:volname"
    backup_volfile_servers: tuple[str, ...]
    options: tuple[str, ...]  # glustervolumeoptions

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> "Volume":
        """Parse Heketi's volume info JSON; raises KeyError/ValueError/TypeError if malformed."""
        glusterfs = raw["mount"]["glusterfs"]
        options = glusterfs.get("options") or {}
        backup = str(options.get("backup-volfile-servers", ""))
        return cls(
            id=str(raw["id"]),
            name=str(raw["name"]),
            size_gib=int(raw["size"]),
            cluster=str(raw.get("cluster", "")),
            durability=Durability.from_json(raw.get("durability") or {}),
            gid=int(raw.get("gid", 0)),
            hosts=tuple(str(h) for h in glusterfs.get("hosts") or ()),
            device=str(glusterfs.get("device", "")),
            backup_volfile_servers=tuple(s for s in backup.split(",") if s),
            # Heketi surrounds the request's options with its (usually empty) pre- and
            # post-request options: ["", ""] for a volume created without any
            options=tuple(str(o) for o in raw.get("glustervolumeoptions") or () if o),
        )


@dataclass(frozen=True)
class VolumeCreateRequest:
    """What to ask Heketi for; `to_json` is the body of `POST /volumes`."""

    size_gib: int
    name: str
    durability: Durability
    gid: int = 0
    clusters: tuple[str, ...] = ()
    gluster_volume_options: tuple[str, ...] = ()
    snapshot_factor: float | None = None  # None = snapshots disabled

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "size": self.size_gib,
            "name": self.name,
            "durability": self.durability.to_json(),
        }
        if self.gid:
            body["gid"] = self.gid
        if self.clusters:
            body["clusters"] = list(self.clusters)
        if self.gluster_volume_options:
            body["glustervolumeoptions"] = list(self.gluster_volume_options)
        if self.snapshot_factor is not None:
            body["snapshot"] = {"enable": True, "factor": self.snapshot_factor}
        return body


def same_durability(a: Durability, b: Durability) -> bool:
    """Whether two durabilities make the same layout (unused counts ignored)."""
    if a.type != b.type:
        return False
    if a.type == "replicate":
        return a.replica == b.replica
    if a.type == "disperse":
        return (a.data, a.redundancy) == (b.data, b.redundancy)
    return True


def describe_durability(durability: Durability) -> str:
    """A durability as the StorageClass parameter `volumetype` writes it."""
    if durability.type == "replicate":
        return f"replicate:{durability.replica}"
    if durability.type == "disperse":
        return f"disperse:{durability.data}:{durability.redundancy}"
    return "none"
