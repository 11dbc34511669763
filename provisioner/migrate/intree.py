"""What an in-tree GlusterFS PV is: static or Heketi-made, where its servers are listed.

The in-tree plugin (kubernetes.io/glusterfs, removed in Kubernetes 1.26) mounted
`spec.glusterfs.path` from the IPs of the Endpoints object `spec.glusterfs.endpoints`,
read from `endpointsNamespace` when set, else from the namespace of the pod (which is
the claim's). Its Heketi provisioner annotated the PVs it made with the Heketi volume
id; its deleter used that annotation, else the path with `vol_` trimmed.
"""

from dataclasses import dataclass
from typing import Any, Final

from provisioner.core import annotations
from provisioner.heketi.types import is_heketi_id
from provisioner.kube.api import Obj
from provisioner.migrate.cluster import annotations_of, name_of, spec_of

STATIC: Final = "static"
HEKETI: Final = "heketi"
HEKETI_CREATED_BY: Final = "heketi-dynamic-provisioner"


def is_in_tree(pv: Obj) -> bool:
    return isinstance(spec_of(pv).get("glusterfs"), dict)


def is_migrated(pv: Obj, driver: str) -> bool:
    csi = spec_of(pv).get("csi") or {}
    return csi.get("driver") == driver and annotations.ANN_MIGRATED_FROM in annotations_of(pv)


@dataclass(frozen=True)
class Source:
    """An in-tree GlusterFS PV, read."""

    name: str
    kind: str
    claim_namespace: str
    claim_name: str
    claim_uid: str
    endpoints_namespace: str
    endpoints_name: str
    volume: str
    read_only: bool
    heketi_id: str
    gid: str
    reclaim_policy: str
    access_modes: tuple[str, ...]
    mount_options: tuple[str, ...]
    storage_class: str

    @property
    def claim(self) -> str:
        return f"{self.claim_namespace}/{self.claim_name}" if self.claim_name else ""

    @property
    def endpoints(self) -> str:
        return f"{self.endpoints_namespace}/{self.endpoints_name}"


def kind_of(pv: Obj) -> str:
    ann = annotations_of(pv)
    made_by_heketi = (
        annotations.ANN_IN_TREE_HEKETI_ID in ann
        or ann.get(annotations.ANN_PROVISIONED_BY) == annotations.IN_TREE_PLUGIN
        or ann.get(annotations.ANN_IN_TREE_CREATED_BY) == HEKETI_CREATED_BY
    )
    return HEKETI if made_by_heketi else STATIC


#: Heketi names a volume made without a name `vol_<id>` (v10.4.1 `volume_entry.go`), the
#: Gluster path the in-tree plugin recorded for every volume it made.
HEKETI_NAME_PREFIX = "vol_"


def heketi_id_of(pv: Obj) -> str:
    """The Heketi volume id as the in-tree deleter found it ("" when it cannot be found)."""
    annotated = annotations_of(pv).get(annotations.ANN_IN_TREE_HEKETI_ID, "")
    if annotated:
        return annotated if is_heketi_id(annotated) else ""
    path = str((spec_of(pv).get("glusterfs") or {}).get("path", ""))
    volume_id = path.removeprefix(HEKETI_NAME_PREFIX)
    return volume_id if path.startswith(HEKETI_NAME_PREFIX) and is_heketi_id(volume_id) else ""


def source_of(pv: Obj) -> Source:
    spec = spec_of(pv)
    gluster: dict[str, Any] = spec.get("glusterfs") or {}
    ref: dict[str, Any] = spec.get("claimRef") or {}
    kind = kind_of(pv)
    claim_namespace = str(ref.get("namespace", ""))
    return Source(
        name=name_of(pv),
        kind=kind,
        claim_namespace=claim_namespace,
        claim_name=str(ref.get("name", "")),
        claim_uid=str(ref.get("uid", "")),
        endpoints_namespace=str(gluster.get("endpointsNamespace") or claim_namespace),
        endpoints_name=str(gluster.get("endpoints", "")),
        volume=str(gluster.get("path", "")),
        read_only=bool(gluster.get("readOnly", False)),
        heketi_id=heketi_id_of(pv) if kind == HEKETI else "",
        gid=annotations_of(pv).get(annotations.ANN_GID, ""),
        reclaim_policy=str(spec.get("persistentVolumeReclaimPolicy") or "Retain"),
        access_modes=tuple(spec.get("accessModes") or ()),
        mount_options=tuple(spec.get("mountOptions") or ()),
        storage_class=str(spec.get("storageClassName") or ""),
    )


def servers_of(endpoints: Obj) -> tuple[str, ...]:
    """The ready IPs of an Endpoints object, de-duplicated, in order (hostnames unused,
    as the in-tree mounter used `addresses[].ip` only)."""
    found: dict[str, None] = {}
    for subset in endpoints.get("subsets") or []:
        for address in (subset or {}).get("addresses") or []:
            ip = str((address or {}).get("ip") or "")
            if ip:
                found.setdefault(ip, None)
    return tuple(found)


#: The node plugin's limits on volumeAttributes `servers` (provisioner/csi/validation.py):
#: IPv4 addresses or host names (mount.glusterfs's backup-volfile-servers cannot express
#: IPv6), at most 16.
MAX_SERVERS: Final = 16


def mountable(servers: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The servers the node plugin can mount from, and notes on what was left out."""
    ipv4 = tuple(s for s in servers if ":" not in s)
    notes = []
    if len(ipv4) < len(servers):
        dropped = ", ".join(s for s in servers if ":" in s)
        notes.append(f"IPv6 addresses left out (the node plugin mounts over IPv4): {dropped}")
    if len(ipv4) > MAX_SERVERS:
        notes.append(f"{len(ipv4)} servers listed; the CSI PV names the first {MAX_SERVERS}")
    return ipv4[:MAX_SERVERS], tuple(notes)
