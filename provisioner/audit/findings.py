"""What the audit finds: pure functions over Heketi volumes and Kubernetes objects."""

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from provisioner.core import annotations
from provisioner.heketi.types import Volume

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_PVC_NAME = re.compile(rf"^{re.escape(annotations.HEKETI_NAME_PREFIX)}(?P<uid>{_UUID})$")

# ---------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class OrphanVolume:
    """A Heketi volume with our naming that nothing references."""

    id: str
    name: str
    size_gib: int
    gid: int
    claim_uid: str
    first_seen: str | None = None  # ISO time this audit first saw it orphaned (delete runs)


@dataclass(frozen=True)
class MissingVolume:
    """A PV of our driver whose backing Heketi volume does not exist."""

    pv: str
    volume_handle: str
    claim: str
    phase: str


@dataclass(frozen=True)
class PendingClaim:
    """A claim of our driver pending longer than the threshold."""

    claim: str
    storage_class: str
    pending_seconds: int
    reason: str
    message: str


@dataclass(frozen=True)
class GidCollision:
    """One GID held by two or more distinct volumes."""

    gid: int
    holders: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    heketi_url: str
    orphaned_volumes: tuple[OrphanVolume, ...] = ()
    missing_volumes: tuple[MissingVolume, ...] = ()
    pending_claims: tuple[PendingClaim, ...] = ()
    gid_collisions: tuple[GidCollision, ...] = ()
    deleted: tuple[OrphanVolume, ...] = ()
    waiting: tuple[OrphanVolume, ...] = ()  # orphans not yet old enough to delete
    delete_errors: tuple[str, ...] = ()

    @property
    def has_findings(self) -> bool:
        return bool(
            self.orphaned_volumes
            or self.missing_volumes
            or self.pending_claims
            or self.gid_collisions
            or self.delete_errors
        )


# ---------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class ClusterState:
    """What the audit reads from Kubernetes (plain API dicts)."""

    pvs: tuple[dict[str, Any], ...]
    pvcs: tuple[dict[str, Any], ...]
    storage_classes: tuple[dict[str, Any], ...]
    events: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class AuditSettings:
    driver_name: str
    heketi_url: str
    pending_after_seconds: float
    extra_prefixes: tuple[str, ...] = ()


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return meta


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    ann: Mapping[str, str] = _meta(obj).get("annotations") or {}
    return ann


def _csi(pv: Mapping[str, Any]) -> Mapping[str, Any]:
    csi: Mapping[str, Any] = (pv.get("spec") or {}).get("csi") or {}
    return csi


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def pv_is_ours(pv: Mapping[str, Any], *, driver_name: str, heketi_url: str) -> bool:
    """A PV of our driver whose Heketi (when annotated) is the audited one."""
    if _csi(pv).get("driver") != driver_name:
        return False
    url = _annotations(pv).get(annotations.ANN_HEKETI_URL)
    return url is None or _same_url(url, heketi_url)


def class_prefixes(classes: Iterable[Mapping[str, Any]], *, driver_name: str) -> set[str]:
    """`volumenameprefix` values of our driver's StorageClasses (keys are case-insensitive)."""
    prefixes: set[str] = set()
    for sc in classes:
        if sc.get("provisioner") != driver_name:
            continue
        for key, value in (sc.get("parameters") or {}).items():
            if key.lower() == "volumenameprefix" and value:
                prefixes.add(str(value))
    return prefixes


def claim_uid_of(name: str, prefixes: Iterable[str]) -> str | None:
    """The claim UID our naming rule put into a Heketi volume name, None if not ours.

    Names are ``pvc-<uid>``, ``<prefix>_<namespace>_<claim>_<uid>`` or ``<prefix>_<uid>``
    (volume_naming.heketi_volume_name; namespace and claim may be shortened or sanitised).
    """
    match = _PVC_NAME.match(name)
    if match:
        return match.group("uid")
    for prefix in prefixes:
        pattern = rf"^{re.escape(prefix)}_(?:[A-Za-z0-9-]*_[A-Za-z0-9-]*_)?(?P<uid>{_UUID})$"
        match = re.match(pattern, name)
        if match:
            return match.group("uid")
    return None


def _referenced(pvs: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every Heketi volume id or name any PV (of any driver) points at."""
    refs: set[str] = set()
    for pv in pvs:
        csi = _csi(pv)
        for value in (
            csi.get("volumeHandle"),
            (csi.get("volumeAttributes") or {}).get(annotations.CTX_VOLUME),
            _annotations(pv).get(annotations.ANN_HEKETI_VOLUME_NAME),
            ((pv.get("spec") or {}).get("glusterfs") or {}).get("path"),
        ):
            if value:
                refs.add(str(value))
    return refs


def find_orphans(
    volumes: Iterable[Volume], state: ClusterState, *, prefixes: Iterable[str]
) -> list[OrphanVolume]:
    """Heketi volumes with our naming, referenced by no PV, whose claim is gone."""
    refs = _referenced(state.pvs)
    claim_uids = {_meta(pvc).get("uid") for pvc in state.pvcs}
    found: list[OrphanVolume] = []
    for vol in volumes:
        uid = claim_uid_of(vol.name, prefixes)
        if uid is None or vol.id in refs or vol.name in refs or uid in claim_uids:
            continue
        found.append(OrphanVolume(vol.id, vol.name, vol.size_gib, vol.gid, uid))
    return sorted(found, key=lambda o: o.name)


def find_missing(
    volumes: Iterable[Volume], state: ClusterState, settings: AuditSettings
) -> list[MissingVolume]:
    """PVs of ours whose Heketi volume (by id or name) is not in Heketi."""
    known = {v.id for v in volumes} | {v.name for v in volumes}
    found: list[MissingVolume] = []
    for pv in state.pvs:
        if not pv_is_ours(pv, driver_name=settings.driver_name, heketi_url=settings.heketi_url):
            continue
        handle = str(_csi(pv).get("volumeHandle") or "")
        if handle in known:
            continue
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
        phase = str((pv.get("status") or {}).get("phase", ""))
        found.append(MissingVolume(str(_meta(pv).get("name")), handle, claim, phase))
    return sorted(found, key=lambda m: m.pv)


def _claim_class(pvc: Mapping[str, Any]) -> str:
    spec_class = (pvc.get("spec") or {}).get("storageClassName")
    return str(spec_class or _annotations(pvc).get(annotations.ANN_BETA_STORAGE_CLASS) or "")


def _claim_is_ours(pvc: Mapping[str, Any], our_classes: set[str], driver_name: str) -> bool:
    ann = _annotations(pvc)
    if driver_name in (
        ann.get(annotations.ANN_STORAGE_PROVISIONER),
        ann.get(annotations.ANN_BETA_STORAGE_PROVISIONER),
    ):
        return True
    return _claim_class(pvc) in our_classes


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _event_time(event: Mapping[str, Any]) -> float:
    for value in (
        event.get("lastTimestamp"),
        (event.get("series") or {}).get("lastObservedTime"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        _meta(event).get("creationTimestamp"),
    ):
        parsed = _parse_time(value)
        if parsed is not None:
            return parsed
    return 0.0


def last_events_by_uid(events: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The most recent Event per involved object UID."""
    latest: dict[str, Mapping[str, Any]] = {}
    for event in events:
        uid = (event.get("involvedObject") or event.get("regarding") or {}).get("uid")
        if not uid:
            continue
        if uid not in latest or _event_time(event) >= _event_time(latest[uid]):
            latest[uid] = event
    return latest


def find_pending(state: ClusterState, settings: AuditSettings, *, now: float) -> list[PendingClaim]:
    """Our claims pending longer than the threshold, with their latest Event."""
    our_classes = {
        str(_meta(sc).get("name"))
        for sc in state.storage_classes
        if sc.get("provisioner") == settings.driver_name
    }
    events = last_events_by_uid(state.events)
    found: list[PendingClaim] = []
    for pvc in state.pvcs:
        meta = _meta(pvc)
        phase = (pvc.get("status") or {}).get("phase", "Pending")
        if phase != "Pending" or not _claim_is_ours(pvc, our_classes, settings.driver_name):
            continue
        created = _parse_time(meta.get("creationTimestamp")) or now
        age = now - created
        if age < settings.pending_after_seconds:
            continue
        event = events.get(str(meta.get("uid")), {})
        found.append(
            PendingClaim(
                claim=f"{meta.get('namespace')}/{meta.get('name')}",
                storage_class=_claim_class(pvc),
                pending_seconds=int(age),
                reason=str(event.get("reason") or ""),
                message=str(event.get("message") or event.get("note") or "no Events recorded"),
            )
        )
    return sorted(found, key=lambda p: p.claim)


def find_gid_collisions(
    volumes: Iterable[Volume], state: ClusterState, settings: AuditSettings
) -> list[GidCollision]:
    """GIDs held by more than one volume. A PV and its own Heketi volume count as one,
    and so do a clone and its source (Heketi gives a clone its source's GID): one
    family, linked by the `clone-of` volume attribute of the clone's PV."""
    holders: dict[int, dict[str, set[str]]] = {}
    ours = [
        pv
        for pv in state.pvs
        if pv_is_ours(pv, driver_name=settings.driver_name, heketi_url=settings.heketi_url)
    ]
    family = _clone_families(ours)

    def add(gid: int, volume_key: str, label: str) -> None:
        if gid > 0:
            holders.setdefault(gid, {}).setdefault(family(volume_key), set()).add(label)

    name_to_id = {v.name: v.id for v in volumes}
    for vol in volumes:
        add(vol.gid, vol.id, f"heketi:{vol.name}")
    for pv in ours:
        gid_text = _annotations(pv).get(annotations.ANN_GID, "")
        if not gid_text.isdigit():
            continue
        handle = str(_csi(pv).get("volumeHandle") or "")
        add(int(gid_text), name_to_id.get(handle, handle), f"pv:{_meta(pv).get('name')}")
    found = [
        GidCollision(gid, tuple(sorted(label for labels in by_vol.values() for label in labels)))
        for gid, by_vol in holders.items()
        if len(by_vol) > 1
    ]
    return sorted(found, key=lambda c: c.gid)


def _clone_families(pvs: Iterable[Mapping[str, Any]]) -> Callable[[str], str]:
    """volume id → the id of its clone family's first volume (itself when not a clone)."""
    parent: dict[str, str] = {}
    for pv in pvs:
        source = str((_csi(pv).get("volumeAttributes") or {}).get(annotations.CTX_CLONE_OF) or "")
        if source:
            parent[str(_csi(pv).get("volumeHandle") or "")] = source

    def root(volume_id: str) -> str:
        seen = {volume_id}
        while volume_id in parent and parent[volume_id] not in seen:
            volume_id = parent[volume_id]
            seen.add(volume_id)
        return volume_id

    return root


def orphans_of(
    volumes: Iterable[Volume], state: ClusterState, settings: AuditSettings
) -> list[OrphanVolume]:
    """`find_orphans` with the name prefixes of the driver's classes and the settings."""
    prefixes = class_prefixes(state.storage_classes, driver_name=settings.driver_name)
    prefixes.update(settings.extra_prefixes)
    return find_orphans(volumes, state, prefixes=prefixes)


def build_report(
    volumes: Sequence[Volume], state: ClusterState, settings: AuditSettings, *, now: float
) -> Report:
    """Every finding of one audit run (pure)."""
    return Report(
        heketi_url=settings.heketi_url,
        orphaned_volumes=tuple(orphans_of(volumes, state, settings)),
        missing_volumes=tuple(find_missing(volumes, state, settings)),
        pending_claims=tuple(find_pending(state, settings, now=now)),
        gid_collisions=tuple(find_gid_collisions(volumes, state, settings)),
    )
