"""Bookkeeping of the Heketi test server: topology, bricks, volumes.

Not thread-safe by itself; the server holds its lock around every call. Request
bodies reach it decoded and checked (`bodies`).

Placement follows Heketi's rules (`placer`): brick sets of the whole size,
split into more, smaller sets when they find no room (replica N: N bricks per set;
disperse D+R: D+R bricks of size/D; none: one brick), bricks of a set on distinct
nodes (unless the topology is one host, as in the gluster mode), the device space a
brick takes with its snapshot reserve and thin-pool metadata, strict zone checking,
device tag rules and arbiter bricks; a volume that fits nowhere fails with Heketi's
"No space".
"""

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from provisioner.heketi.placement import placement_of
from testbed.heketi import placer
from testbed.heketi.bodies import CreateSpec, RequestError, check_min_size, create_spec
from testbed.heketi.placer import PlacementError

KIB_PER_GIB = 1024 * 1024
#: Room for 10,000 one-GiB replica-3 volumes per node (the benchmarks' scale).
DEFAULT_DEVICE_GIB = 16_384


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
    tags: dict[str, str] = field(default_factory=dict)

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
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Brick:
    id: str
    path: str
    device: str
    node: str
    volume: str
    size_kib: int  # reported brick size
    reserved_kib: int  # device space taken (snapshot reserve and thin-pool metadata too)


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

    def load_topology(self, topology: Any, *, device_gib: int) -> None:
        """Clusters from a heketi-cli `topology load` file (clusters → nodes → `node`
        {hostnames, zone, tags} and `devices`: names or {name, tags}); every device
        `device_gib` GiB, as Heketi's mock executor makes them all one size."""
        for raw_cluster in topology["clusters"]:
            cluster = new_id()
            self.clusters[cluster] = [
                _topology_node(cluster, raw["node"], raw["devices"], device_gib)
                for raw in raw_cluster["nodes"]
            ]

    def volume_names(self, cluster: str) -> set[str]:
        return self._names.get(cluster, set())

    # -- create ----------------------------------------------------------------

    def validate_create(self, body: Any) -> CreateSpec:
        """Heketi's synchronous checks of a create request, in Heketi's order: the
        body's (`bodies.create_spec`), then requested clusters, then the minimum size."""
        spec = create_spec(body)
        clusters = self._requested_clusters(spec.clusters)
        check_min_size(spec.size, spec.durability)
        return replace(spec, clusters=clusters)

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
            try:
                bricks = self._place(cluster, volume, spec.size)
            except PlacementError as exc:
                raise RequestError(500, str(exc)) from None
            if bricks is not None:
                volume.cluster = cluster
                volume.bricks = bricks
                self._names.setdefault(cluster, set()).add(name)
                self.volumes[volume_id] = volume
                return volume
        raise RequestError(500, "No space")

    def allocate_expand(self, volume: VolumeRecord, add_gib: int) -> list[Brick]:
        try:
            bricks = self._place(volume.cluster, volume, add_gib)
        except PlacementError as exc:
            raise RequestError(500, str(exc)) from None
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
        """allocBricksInCluster: the fewest brick sets that fit (None: "No space");
        `PlacementError` for a request no split can change (bad tag rule, files larger
        than an arbiter's brick)."""
        placement = placement_of(volume.options)
        rule = placer.tag_rule(placement)
        set_size, data = _set_shape(volume.durability)
        factor = float(volume.snapshot.get("factor", 1) or 1)
        for sets, brick_kib in placer.brick_sets(size_gib * KIB_PER_GIB, data):
            if sets * set_size + len(volume.bricks) > placer.BRICK_MAX_COUNT:
                return None
            slots = placer.set_slots(placement, set_size, brick_kib, factor)
            free = {d.id: d.free_kib for n in self.clusters[cluster] for d in n.devices}
            chosen = []
            for _ in range(sets):
                found = placer.choose(
                    self.clusters[cluster],
                    slots,
                    placement=placement,
                    rule=rule,
                    free=free,
                    distinct_nodes=self._distinct_nodes,
                )
                if found is None:
                    break
                chosen.extend(found)
            else:
                return [self._new_brick(volume, *c) for c in chosen]
        return None

    def _new_brick(
        self, volume: VolumeRecord, slot: placer.Slot, node: Node, device: Device
    ) -> Brick:
        brick_id = new_id()
        device.used_kib += slot.reserve_kib
        device.bricks.add(brick_id)
        return Brick(
            id=brick_id,
            path=self._brick_path(device, brick_id),
            device=device.id,
            node=node.id,
            volume=volume.id,
            size_kib=slot.amount_kib,
            reserved_kib=slot.reserve_kib,
        )

    def _brick_path(self, device: Device, brick_id: str) -> str:
        return f"{self._brick_root}/vg_{device.id}/brick_{brick_id}/brick"

    def _all_nodes(self) -> list[Node]:
        return [n for nodes in self.clusters.values() for n in nodes]

    # -- JSON --------------------------------------------------------------------

    def volume_json(self, volume: VolumeRecord) -> dict[str, Any]:
        # volume_entry_create.go updateMountInfo: every node of the cluster serves the
        # volfile, in the cluster's (sorted) node order; bricks in id order (v.Bricks)
        nodes = sorted(self.clusters.get(volume.cluster, ()), key=lambda n: n.id)
        hosts = [n.storage for n in nodes]
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
            "bricks": [_brick_json(b) for b in sorted(volume.bricks, key=lambda b: b.id)],
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


def _topology_node(cluster: str, node: Any, devices: Any, device_gib: int) -> Node:
    hostnames = node["hostnames"]
    return Node(
        id=new_id(),
        cluster=cluster,
        zone=int(node.get("zone", 0)),
        manage=str(hostnames["manage"][0]),
        storage=str(hostnames["storage"][0]),
        tags=dict(node.get("tags") or {}),
        devices=[
            Device(
                id=new_id(),
                name=str(d if isinstance(d, str) else d["name"]),
                total_kib=device_gib * KIB_PER_GIB,
                tags={} if isinstance(d, str) else dict(d.get("tags") or {}),
            )
            for d in devices
        ],
    )


def _set_shape(durability: dict[str, Any]) -> tuple[int, int]:
    """(bricks in a set, data bricks sharing a set's size)."""
    if durability["type"] == "replicate":
        return int(durability["replicate"]["replica"]), 1
    if durability["type"] == "disperse":
        data = int(durability["disperse"]["data"])
        return data + int(durability["disperse"]["redundancy"]), data
    return 1, 1


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
    body = {
        "zone": node.zone,
        "cluster": node.cluster,
        "id": node.id,
        "state": node.state,
        "hostnames": {"manage": [node.manage], "storage": [node.storage]},
        "devices": [
            _with_tags(
                {
                    "name": d.name,
                    "id": d.id,
                    "state": d.state,
                    "storage": {"total": d.total_kib, "free": d.free_kib, "used": d.used_kib},
                    "bricks": [_brick_json(bricks[b]) for b in d.bricks if b in bricks],
                },
                d.tags,
            )
            for d in node.devices
        ],
    }
    return _with_tags(body, node.tags)


def _with_tags(body: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    """api types.go: `tags` is `omitempty` on nodes and devices."""
    if tags:
        body["tags"] = dict(tags)
    return body
