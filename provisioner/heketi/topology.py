"""Reads of Heketi's topology: its clusters, their nodes and devices, free space.

`HeketiClient` takes these from `TopologyReads`. The nodes are read as heketi-cli's
"topology info" reads them (`GET /clusters` → `GET /clusters/{id}` → `GET
/nodes/{id}`; `GET /topology` is no route of Heketi v10.4.1); a cluster or node
Heketi no longer knows adds nothing. A device counts when it and its node are
online, and, given a tag rule (`user.heketi.device-tag-match`), when its tags merged
over its node's match the rule, as Heketi's placer decides.
"""

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from provisioner.heketi.errors import HeketiInvalidRequest, HeketiNotFound, HeketiOperationFailed
from provisioner.heketi.placement import TagRule, merged_tags
from provisioner.heketi.types import Cluster

_KIB_PER_GIB: Final = 1024 * 1024
#: Heketi's routes match ids by `[A-Fa-f0-9]+` (app.go); anything else is no route.
_ID_RE: Final = re.compile(r"^[A-Fa-f0-9]{1,128}$")


class TopologyReads:
    """The topology reads of `HeketiClient` (which provides `_get` and `_ids`)."""

    def _get(self, path: str, *, expect_json: bool = True) -> Any:
        raise NotImplementedError

    def _ids(self, path: str, field: str) -> list[str]:
        raise NotImplementedError

    def list_clusters(self) -> list[str]:
        return self._ids("/clusters", "clusters")

    def cluster_info(self, cluster_id: str) -> Cluster:
        """The cluster's nodes and volumes; `HeketiNotFound` when Heketi does not know it."""
        raw = self._get(f"/clusters/{checked_id(cluster_id, what='cluster')}")
        try:
            return Cluster.from_json(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HeketiOperationFailed(f"Heketi returned a malformed cluster: {exc!r}") from None

    def free_space_gib(
        self, clusters: Sequence[str] = (), *, tag_rule: TagRule | None = None
    ) -> int:
        """Free space (whole GiB) of the usable devices in `clusters` (all when empty).
        Raw device space: a replica-3 volume consumes three times its size."""
        nodes = [node for found in self._cluster_nodes(clusters) for node in found]
        return sum(online_free_kib(n, tag_rule) for n in nodes) // _KIB_PER_GIB

    def placement_domains(
        self, clusters: Sequence[str] = (), *, tag_rule: TagRule | None = None, zones: bool = False
    ) -> int:
        """How many bricks of one set the best cluster in `clusters` (all when empty)
        could ever hold: its nodes (zones, when `zones`) with a usable device. Heketi
        puts the bricks of a set on distinct nodes (and zones, with strict checking)."""
        found = (placement_domains(n, tag_rule, zones=zones) for n in self._cluster_nodes(clusters))
        return max(found, default=0)

    def _cluster_nodes(self, clusters: Sequence[str]) -> Iterator[list[Mapping[str, Any]]]:
        for cluster_id in clusters or self.list_clusters():
            try:
                cluster = self.cluster_info(cluster_id)
            except HeketiNotFound:
                continue
            yield [n for n in map(self._node_info, cluster.nodes) if n is not None]

    def _node_info(self, node_id: str) -> Mapping[str, Any] | None:
        path = f"/nodes/{checked_id(node_id, what='node')}"
        try:
            node = self._get(path)
            online_free_kib(node, None)  # the fields we read are well-formed
        except HeketiNotFound:
            return None  # removed since the cluster was read
        except (AttributeError, KeyError, TypeError, ValueError):
            raise HeketiOperationFailed(
                f"Heketi answered GET {path} with a malformed node", status=200
            ) from None
        return node  # type: ignore[no-any-return]


def checked_id(heketi_id: str, *, what: str = "volume") -> str:
    if not _ID_RE.match(heketi_id):
        raise HeketiInvalidRequest(f"{heketi_id!r} is not a valid Heketi {what} id")
    return heketi_id


def online_free_kib(node: Mapping[str, Any], tag_rule: TagRule | None) -> int:
    """Free KiB of a node's usable devices (`GET /nodes/{id}`: `state`, `tags`,
    `devices[].state`, `devices[].tags`, `devices[].storage.free`); raises
    KeyError/TypeError/ValueError/AttributeError if malformed."""
    return sum(int(d["storage"]["free"]) for d in _usable_devices(node, tag_rule))


def placement_domains(
    nodes: Sequence[Mapping[str, Any]], tag_rule: TagRule | None, *, zones: bool
) -> int:
    """How many of `nodes` (distinct zones of them, when `zones`) have a usable device."""
    usable = [n for n in nodes if _usable_devices(n, tag_rule)]
    return len({n.get("zone") for n in usable}) if zones else len(usable)


def _usable_devices(node: Mapping[str, Any], tag_rule: TagRule | None) -> list[Mapping[str, Any]]:
    if node.get("state", "online") != "online":
        return []
    node_tags = _tags(node)
    return [
        d
        for d in node.get("devices") or ()
        if d.get("state", "online") == "online"
        and (tag_rule is None or tag_rule.matches(merged_tags(node_tags, _tags(d))))
    ]


def _tags(raw: Mapping[str, Any]) -> dict[str, str]:
    tags = raw.get("tags") or {}
    if not isinstance(tags, dict):
        raise TypeError("tags must be an object")
    return {str(k): str(v) for k, v in tags.items()}
