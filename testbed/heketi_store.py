"""Bookkeeping of the Heketi test server: topology, bricks, volumes.

Not thread-safe by itself; the server holds its lock around every call.

Placement is simpler than Heketi's but keeps its visible rules: every create
or expand allocates one brick set (replica N: N bricks of the full size;
disperse D+R: D+R bricks of size/D; none: one brick), bricks of a set go on
distinct nodes (unless the topology allows several per node, as the one-host
gluster mode does), snapshots reserve `factor` times the brick size, and a set
that fits nowhere fails with Heketi's "No space".
"""

import math
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

KIB_PER_GIB = 1024 * 1024
#: Room for 10,000 one-GiB replica-3 volumes per node (the benchmarks' scale).
DEFAULT_DEVICE_GIB = 16_384
#: Heketi fills in replica 2 when a replicate request gives no count
#: (apps/glusterfs DEFAULT_REPLICA).
DEFAULT_REPLICA = 2
MAX_SNAPSHOT_FACTOR = 100
_GO_MAX_INT32 = 2**31 - 1
_VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_DISPERSE_COMBINATIONS = {(2, 1), (4, 2), (8, 3), (8, 4)}
_DURABILITY_TYPES = ("replicate", "disperse", "none")


class RequestError(Exception):
    """A synchronous refusal: HTTP status and Heketi's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def new_id() -> str:
    """Heketi ids: 32 hex digits."""
    return uuid.uuid4().hex


@dataclass
class Device:
    id: str
    name: str
    total_kib: int
    used_kib: int = 0
    bricks: set[str] = field(default_factory=set)
    state: str = "online"  # Heketi's online / offline / failed

    @property
    def free_kib(self) -> int:
        return self.total_kib - self.used_kib


@dataclass
class Node:
    id: str
    cluster: str
    zone: int
    manage: str
    storage: str
    devices: list[Device]
    state: str = "online"  # Heketi's online / offline / failed


@dataclass
class Brick:
    id: str
    path: str
    device: str
    node: str
    volume: str
    size_kib: int  # reported brick size
    reserved_kib: int  # device space taken (includes the snapshot reserve)


@dataclass
class VolumeRecord:
    id: str
    name: str
    size: int
    cluster: str
    durability: dict[str, Any]
    gid: int
    options: list[str]
    snapshot: dict[str, Any]
    bricks: list[Brick] = field(default_factory=list)
    #: "creating" and "deleting" volumes are hidden: Heketi's reads show only
    #: volumes without a pending operation on the volume itself.
    state: str = "creating"
    busy: bool = True  # an operation is running on it


@dataclass(frozen=True)
class CreateSpec:
    """A validated `POST /volumes` body."""

    size: int
    name: str
    durability: dict[str, Any]
    gid: int
    clusters: tuple[str, ...]
    options: tuple[str, ...]
    snapshot: dict[str, Any]


class Store:
    """Clusters → nodes → devices, bricks and volumes."""

    def __init__(self, *, distinct_nodes: bool = True, brick_root: str = "/var/lib/heketi/mounts"):
        self.clusters: dict[str, list[Node]] = {}
        self.volumes: dict[str, VolumeRecord] = {}
        self._names: dict[str, set[str]] = {}  # cluster → names in use (incl. in flight)
        self._distinct_nodes = distinct_nodes
        self._brick_root = brick_root

    # -- topology --------------------------------------------------------------

    def add_cluster(self, *, nodes: list[tuple[str, str, int]]) -> str:
        """Add a cluster of (manage host, storage address, device GiB) nodes."""
        cluster = new_id()
        self.clusters[cluster] = [
            Node(
                id=new_id(),
                cluster=cluster,
                zone=i + 1,
                manage=manage,
                storage=storage,
                devices=[Device(id=new_id(), name="/dev/vdb", total_kib=gib * KIB_PER_GIB)],
            )
            for i, (manage, storage, gib) in enumerate(nodes)
        ]
        return cluster

    def volume_names(self, cluster: str) -> set[str]:
        return self._names.get(cluster, set())

    # -- create ----------------------------------------------------------------

    def validate_create(self, body: Any) -> CreateSpec:
        """Heketi's synchronous checks of a create request, in Heketi's order: JSON
        decoding (any mistyped field: 422), struct validation, gid, durability type,
        snapshot factor, replica / dispersion, requested clusters."""
        spec = _decode_create(body)
        _check_struct(spec.size, spec.name)
        if spec.gid < 0:
            raise RequestError(400, "Bad group id less than zero")
        if spec.gid >= _GO_MAX_INT32:
            raise RequestError(400, "Bad group id equal or greater than 2**32")
        if spec.durability["type"] not in _DURABILITY_TYPES:
            raise RequestError(400, "Unknown durability type")
        if spec.snapshot["enable"] and not 1 <= spec.snapshot["factor"] <= MAX_SNAPSHOT_FACTOR:
            raise RequestError(400, "Invalid snapshot factor")
        durability = _checked_durability(spec.durability)
        return replace(
            spec, durability=durability, clusters=self._requested_clusters(spec.clusters)
        )

    def _requested_clusters(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        if not self.clusters:
            raise RequestError(400, "No clusters configured")
        for cluster in requested:
            if cluster not in self.clusters:
                raise RequestError(400, f"Cluster id {cluster} not found")
        return requested or tuple(self.clusters)

    def allocate_volume(self, spec: CreateSpec) -> VolumeRecord:
        """Reserve name and bricks (Heketi's Build step); the volume stays hidden."""
        volume_id = new_id()
        name = spec.name or f"vol_{volume_id}"
        for cluster in spec.clusters:
            if name in self.volume_names(cluster):
                raise RequestError(500, f"Volume name '{name}' already in use")
        volume = VolumeRecord(
            id=volume_id,
            name=name,
            size=spec.size,
            cluster="",
            durability=spec.durability,
            gid=spec.gid,
            options=list(spec.options),
            # volume_entry.go: a volume without snapshots is stored with factor 1
            snapshot=spec.snapshot if spec.snapshot["enable"] else {"enable": False, "factor": 1},
        )
        for cluster in spec.clusters:
            bricks = self._place(cluster, volume, spec.size)
            if bricks is not None:
                volume.cluster = cluster
                volume.bricks = bricks
                self._names.setdefault(cluster, set()).add(name)
                self.volumes[volume_id] = volume
                return volume
        raise RequestError(500, "No space")

    def allocate_expand(self, volume: VolumeRecord, add_gib: int) -> list[Brick]:
        bricks = self._place(volume.cluster, volume, add_gib)
        if bricks is None:
            raise RequestError(500, "No space")
        return bricks

    def release_bricks(self, bricks: list[Brick]) -> None:
        devices = {d.id: d for n in self._all_nodes() for d in n.devices}
        for brick in bricks:
            device = devices.get(brick.device)
            if device is not None and brick.id in device.bricks:
                device.bricks.discard(brick.id)
                device.used_kib -= brick.reserved_kib

    def add_volume(self, volume: VolumeRecord) -> None:
        """Record a volume whose bricks were placed by the caller (a clone's)."""
        self._names.setdefault(volume.cluster, set()).add(volume.name)
        self.volumes[volume.id] = volume

    def drop_volume(self, volume: VolumeRecord) -> None:
        self.release_bricks(volume.bricks)
        if self.volumes.pop(volume.id, None) is not None:
            self._names.get(volume.cluster, set()).discard(volume.name)

    # -- placement -------------------------------------------------------------

    def _place(self, cluster: str, volume: VolumeRecord, size_gib: int) -> list[Brick] | None:
        count, brick_kib = _brick_set(volume.durability, size_gib)
        reserve = math.ceil(
            brick_kib * float(volume.snapshot.get("factor", 1) or 1)
            if volume.snapshot.get("enable")
            else brick_kib
        )
        chosen = self._choose_devices(cluster, count, reserve)
        if chosen is None:
            return None
        bricks = []
        for node, device in chosen:
            brick_id = new_id()
            device.used_kib += reserve
            device.bricks.add(brick_id)
            bricks.append(
                Brick(
                    id=brick_id,
                    path=self._brick_path(device, brick_id),
                    device=device.id,
                    node=node.id,
                    volume=volume.id,
                    size_kib=brick_kib,
                    reserved_kib=reserve,
                )
            )
        return bricks

    def _choose_devices(
        self, cluster: str, count: int, reserve: int
    ) -> list[tuple[Node, Device]] | None:
        free = {d.id: d.free_kib for n in self.clusters[cluster] for d in n.devices}
        chosen: list[tuple[Node, Device]] = []
        for _ in range(count):
            candidates = [
                (free[d.id], n, d)
                for n in self.clusters[cluster]
                for d in n.devices
                if free[d.id] >= reserve
                and not (self._distinct_nodes and any(c[0] is n for c in chosen))
            ]
            if not candidates:
                return None
            _, node, device = max(candidates, key=lambda c: c[0])
            free[device.id] -= reserve
            chosen.append((node, device))
        return chosen

    def _brick_path(self, device: Device, brick_id: str) -> str:
        return f"{self._brick_root}/vg_{device.id}/brick_{brick_id}/brick"

    def _all_nodes(self) -> list[Node]:
        return [n for nodes in self.clusters.values() for n in nodes]

    # -- JSON --------------------------------------------------------------------

    def volume_json(self, volume: VolumeRecord) -> dict[str, Any]:
        nodes = {n.id: n for n in self._all_nodes()}
        hosts: list[str] = []
        for brick in volume.bricks:
            host = nodes[brick.node].storage
            if host not in hosts:
                hosts.append(host)
        body: dict[str, Any] = {
            "size": volume.size,
            "name": volume.name,
            "durability": volume.durability,
            # volume_entry.go NewVolumeEntryFromRequest: the (empty) pre- and post-request
            # options split on "," around the request's; observed ["", ""] without options
            "glustervolumeoptions": ["", *volume.options, ""],
            "snapshot": volume.snapshot,
            "id": volume.id,
            "cluster": volume.cluster,
            "mount": {
                "glusterfs": {
                    "hosts": hosts,
                    "device": f"{hosts[0]}:{volume.name}" if hosts else "",
                    "options": {"backup-volfile-servers": ",".join(hosts[1:])},
                }
            },
            "blockinfo": {},
            "bricks": [_brick_json(b) for b in volume.bricks],
        }
        if volume.gid:
            body["gid"] = volume.gid
        return body

    def visible_volumes(self, cluster: str | None = None) -> list[VolumeRecord]:
        return [
            v
            for v in self.volumes.values()
            if v.state == "online" and (cluster is None or v.cluster == cluster)
        ]

    def cluster_json(self, cluster: str) -> dict[str, Any]:
        return {
            "id": cluster,
            "nodes": sorted(n.id for n in self.clusters[cluster]),
            "volumes": sorted(v.id for v in self.visible_volumes(cluster)),
            "block": True,
            "file": True,
            "blockvolumes": [],
        }

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self._all_nodes() if n.id == node_id), None)

    def device(self, device_id: str) -> Device | None:
        return next((d for n in self._all_nodes() for d in n.devices if d.id == device_id), None)

    def node_json(self, node: Node) -> dict[str, Any]:
        """`GET /nodes/{id}` (app_node.go NodeInfo: NodeEntry.NewInfoReponse)."""
        bricks = {b.id: b for v in self.volumes.values() for b in v.bricks}
        return _node_json(node, bricks)


def _int_field(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise _unparsable()
    return value


def _check_struct(size: int, name: str) -> None:
    """ozzo-validation of VolumeCreateRequest: sorted "field: problem" pairs."""
    problems = {}
    if size == 0:
        problems["size"] = "cannot be blank"
    elif size < 1:
        problems["size"] = "must be no less than 1"
    if name and not _VOLUME_NAME_RE.match(name):
        problems["name"] = "must be in a valid format"
    if problems:
        text = "; ".join(f"{k}: {problems[k]}" for k in sorted(problems))
        raise RequestError(400, f"validation failed: {text}.")


def _decode_create(body: Any) -> CreateSpec:
    """The body as Go's json decoder reads it into VolumeCreateRequest (422 on a type error)."""
    if not isinstance(body, dict):
        raise _unparsable()
    name, clusters, options = (
        _or(body.get(key), empty)
        for key, empty in (("name", ""), ("clusters", []), ("glustervolumeoptions", []))
    )
    if not (isinstance(name, str) and _strings(clusters) and _strings(options)):
        raise _unparsable()
    return CreateSpec(
        size=_int_field(body, "size"),
        name=name,
        durability=_decode_durability(body.get("durability")),
        gid=_int_field(body, "gid"),
        clusters=tuple(clusters),
        options=tuple(options),
        snapshot=_decode_snapshot(body.get("snapshot")),
    )


def _unparsable() -> RequestError:
    return RequestError(422, "request unable to be parsed")


def _or(value: Any, empty: Any) -> Any:
    """JSON null decodes to Go's zero value."""
    return empty if value is None else value


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _object(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _unparsable()
    return raw


def _decode_durability(raw: Any) -> dict[str, Any]:
    durability = _object(raw)
    kind = durability.get("type") or "none"  # Heketi reads "" as none
    disperse = _object(durability.get("disperse"))
    if not isinstance(kind, str):
        raise _unparsable()
    return {
        "type": kind,
        "replicate": {"replica": _int_field(_object(durability.get("replicate")), "replica")},
        "disperse": {
            "data": _int_field(disperse, "data"),
            "redundancy": _int_field(disperse, "redundancy"),
        },
    }


def _checked_durability(durability: dict[str, Any]) -> dict[str, Any]:
    """Heketi's replica and dispersion checks; the durability as Heketi stores it."""
    kind = durability["type"]
    if kind == "replicate":
        replica = durability["replicate"]["replica"]
        if replica > 3:
            raise RequestError(400, "Invalid replica value")
        return {"type": kind, "replicate": {"replica": replica or DEFAULT_REPLICA}, "disperse": {}}
    if kind == "disperse":
        data, redundancy = durability["disperse"]["data"], durability["disperse"]["redundancy"]
        if (data, redundancy) not in _DISPERSE_COMBINATIONS:
            raise RequestError(400, f"Invalid dispersion combination: {data}+{redundancy}")
        return {"type": kind, "replicate": {}, "disperse": {"data": data, "redundancy": redundancy}}
    return {"type": kind, "replicate": {}, "disperse": {}}


def _decode_snapshot(raw: Any) -> dict[str, Any]:
    snapshot = _object(raw)
    enable, factor = _or(snapshot.get("enable"), False), _or(snapshot.get("factor"), 0)
    if not isinstance(enable, bool) or isinstance(factor, bool):
        raise _unparsable()
    if not isinstance(factor, int | float):
        raise _unparsable()
    return {"enable": enable, "factor": factor}


def _brick_set(durability: dict[str, Any], size_gib: int) -> tuple[int, int]:
    """(bricks in the set, KiB per brick)."""
    size_kib = size_gib * KIB_PER_GIB
    if durability["type"] == "replicate":
        return int(durability["replicate"]["replica"]), size_kib
    if durability["type"] == "disperse":
        data = int(durability["disperse"]["data"])
        return data + int(durability["disperse"]["redundancy"]), math.ceil(size_kib / data)
    return 1, size_kib


def _brick_json(brick: Brick) -> dict[str, Any]:
    return {
        "id": brick.id,
        "path": brick.path,
        "device": brick.device,
        "node": brick.node,
        "volume": brick.volume,
        "size": brick.size_kib,
    }


def _node_json(node: Node, bricks: dict[str, Brick]) -> dict[str, Any]:
    return {
        "zone": node.zone,
        "cluster": node.cluster,
        "id": node.id,
        "state": node.state,
        "hostnames": {"manage": [node.manage], "storage": [node.storage]},
        "devices": [
            {
                "name": d.name,
                "id": d.id,
                "state": d.state,
                "storage": {"total": d.total_kib, "free": d.free_kib, "used": d.used_kib},
                "bricks": [_brick_json(bricks[b]) for b in d.bricks if b in bricks],
            }
            for d in node.devices
        ],
    }
