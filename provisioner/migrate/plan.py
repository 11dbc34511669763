"""`migrate plan`: one row per in-tree GlusterFS PV (and per interrupted migration),
with what `apply` would do and what stops it; and the in-tree StorageClasses."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from provisioner.core import annotations
from provisioner.core.storageclass import InvalidParameter, ProvisioningParams, parse_parameters
from provisioner.kube.api import Obj
from provisioner.migrate.classes import ClassRow, class_rows
from provisioner.migrate.cluster import (
    Snapshot,
    annotations_of,
    deleting,
    finalizers_of,
    name_of,
    phase_of,
    uid_of,
)
from provisioner.migrate.intree import (
    HEKETI,
    STATIC,
    Source,
    is_in_tree,
    is_migrated,
    mountable,
    servers_of,
    source_of,
)
from provisioner.migrate.steps import Record, RecordUnreadable, Step, record_of, remaining
from provisioner.migrate.target import build_target
from provisioner.migrate.tls import tls_evidence, tls_findings

READY = "ready"
BLOCKED = "blocked"
MIGRATED = "migrated"
INTERRUPTED = "interrupted"

#: Heketi confirmation: blockers for a Heketi volume of a class (see heketi_check).
Confirm = Callable[[Source, ProvisioningParams], list[str]]
#: The Gluster volume options Heketi lists for a volume it confirmed (heketi_check).
HeketiOptions = Callable[[Source], tuple[str, ...]]


@dataclass(frozen=True)
class Row:
    pv: str
    claim: str
    kind: str
    servers: tuple[str, ...]
    volume: str
    heketi_id: str
    gid: str
    reclaim_policy: str
    access_modes: tuple[str, ...]
    mount_options: tuple[str, ...]
    read_only: bool
    state: str
    actions: tuple[str, ...] = ()
    blockers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: Whether its Gluster volume uses TLS (class volumeoptions or Heketi's volume info).
    tls: bool = False
    #: The CSI PV `apply` creates (from the record when one exists); not printed.
    target: Obj | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Plan:
    volumes: tuple[Row, ...]
    classes: tuple[ClassRow, ...]

    @property
    def blocked(self) -> bool:
        return any(r.state == BLOCKED for r in self.volumes)

    def row(self, pv: str) -> Row | None:
        return next((r for r in self.volumes if r.pv == pv), None)


@dataclass(frozen=True)
class Settings:
    driver: str = annotations.DRIVER_NAME
    confirm: Confirm | None = None
    #: --gluster-tls-ready: the node plugin has the client's TLS files (tls.py).
    tls_ready: bool = False
    heketi_options: HeketiOptions | None = None


def build_plan(snapshot: Snapshot, settings: Settings) -> Plan:
    rows = [_row(pv, snapshot, settings) for pv in snapshot.pvs if _listed(pv, settings)]
    rows += _orphan_records(snapshot, {r.pv for r in rows}, settings)
    rows = _shared_volumes(rows)
    return Plan(tuple(sorted(rows, key=lambda r: r.pv)), in_tree_classes(snapshot))


def _listed(pv: Obj, settings: Settings) -> bool:
    return is_in_tree(pv) or is_migrated(pv, settings.driver)


def _record(claim: Obj | None, pv_name: str) -> tuple[Record | None, str]:
    try:
        record = record_of(claim)
    except RecordUnreadable as exc:
        return None, str(exc)
    return (record, "") if record is None or record.pv_name == pv_name else (None, "")


def _row(pv: Obj, snapshot: Snapshot, settings: Settings) -> Row:
    if is_migrated(pv, settings.driver):
        return _migrated_row(pv, snapshot, settings)
    source = source_of(pv)
    claim = snapshot.claim(source.claim_namespace, source.claim_name)
    record, unreadable = _record(claim, source.name)
    endpoints = snapshot.endpoints_named(source.endpoints_namespace, source.endpoints_name)
    listed = servers_of(endpoints) if endpoints is not None else ()
    servers, notes = mountable(listed)
    params, class_problem = _class_params(source, snapshot)
    steps = remaining(pv, record, claim, settings.driver)
    started = record is not None and record.uid == uid_of(pv)
    blockers = [] if started else _blockers(pv, source, claim, endpoints, listed)
    if listed and not servers and not started:
        blockers.append(
            f"Endpoints {source.endpoints} lists only IPv6 addresses: the node "
            "plugin mounts over IPv4 (or host names)"
        )
    if unreadable:
        blockers.append(unreadable)
    if not started and source.kind == HEKETI:
        blockers += _heketi_blockers(source, params, class_problem, settings)
    tls_blockers, tls_notes = _tls(source, params, settings) if not started else ([], [])
    blockers += tls_blockers
    target = record.target if started and record is not None else None
    if target is None and not blockers:
        target = build_target(pv, source, servers=servers, driver=settings.driver, params=params)
    state = INTERRUPTED if started else BLOCKED if blockers else READY
    row = replace(
        _source_row(source, servers, state, steps, blockers, target),
        tls=bool(tls_blockers or tls_notes),
    )
    notes = (*notes, *tls_notes)
    return replace(row, notes=notes) if notes and not started else row


def _source_row(
    source: Source,
    servers: tuple[str, ...],
    state: str,
    steps: Sequence[Step],
    blockers: Sequence[str],
    target: Obj | None,
) -> Row:
    policy = str(((target or {}).get("spec") or {}).get("persistentVolumeReclaimPolicy", ""))
    return Row(
        pv=source.name,
        claim=source.claim,
        kind=source.kind,
        servers=servers,
        volume=source.volume,
        heketi_id=source.heketi_id,
        gid=source.gid,
        reclaim_policy=policy or (source.reclaim_policy if source.kind == HEKETI else "Retain"),
        access_modes=source.access_modes,
        mount_options=source.mount_options,
        read_only=source.read_only,
        state=state,
        actions=tuple(s.value for s in steps) if state != BLOCKED else (),
        blockers=tuple(blockers),
        target=target,
    )


def _migrated_row(pv: Obj, snapshot: Snapshot, settings: Settings) -> Row:
    spec = pv.get("spec") or {}
    csi, ref = spec.get("csi") or {}, spec.get("claimRef") or {}
    claim = snapshot.claim(str(ref.get("namespace", "")), str(ref.get("name", "")))
    attrs = csi.get("volumeAttributes") or {}
    steps = remaining(pv, None, claim, settings.driver)
    ours = annotations_of(pv).get(annotations.ANN_PROVISIONED_BY) == settings.driver
    kind = HEKETI if ours else STATIC
    return Row(
        pv=name_of(pv),
        claim=f"{ref.get('namespace', '')}/{ref.get('name', '')}",
        kind=kind,
        servers=tuple(s for s in str(attrs.get(annotations.CTX_SERVERS, "")).split(",") if s),
        volume=str(attrs.get(annotations.CTX_VOLUME, "")),
        heketi_id=str(csi.get("volumeHandle", "")) if kind == HEKETI else "",
        gid=annotations_of(pv).get(annotations.ANN_GID, ""),
        reclaim_policy=str(spec.get("persistentVolumeReclaimPolicy", "")),
        access_modes=tuple(spec.get("accessModes") or ()),
        mount_options=tuple(spec.get("mountOptions") or ()),
        read_only=bool(csi.get("readOnly", False)),
        state=MIGRATED if not steps else INTERRUPTED,
        actions=tuple(s.value for s in steps),
    )


def _orphan_records(snapshot: Snapshot, listed: set[str], settings: Settings) -> list[Row]:
    """Claims holding a record whose PV is gone: a run stopped between delete and create."""
    rows: list[Row] = []
    for claim in snapshot.claims:
        try:
            record = record_of(claim)
        except RecordUnreadable:
            continue
        if record is None or record.pv_name in listed or snapshot.pv(record.pv_name):
            continue
        source = source_of(record.original)
        servers = tuple(
            str(
                ((record.target.get("spec") or {}).get("csi") or {})
                .get("volumeAttributes", {})
                .get(annotations.CTX_SERVERS, "")
            ).split(",")
        )
        steps = remaining(None, record, claim, settings.driver)
        rows.append(_source_row(source, servers, INTERRUPTED, steps, [], record.target))
    return rows


def _blockers(
    pv: Obj, source: Source, claim: Obj | None, endpoints: Obj | None, servers: tuple[str, ...]
) -> list[str]:
    found = [*_binding_blockers(pv, source, claim), *_pv_blockers(pv, source)]
    if not source.endpoints_name:
        found.append("spec.glusterfs.endpoints is empty: the Gluster servers are unknown")
    elif not source.endpoints_namespace:
        found.append(
            f"Endpoints {source.endpoints_name}: no endpointsNamespace and no claim, "
            "so its namespace is unknown"
        )
    elif endpoints is None:
        found.append(
            f"Endpoints {source.endpoints} does not exist: the Gluster servers are unknown"
        )
    elif not servers:
        found.append(f"Endpoints {source.endpoints} lists no ready addresses")
    if not source.volume:
        found.append("spec.glusterfs.path is empty: the Gluster volume is unknown")
    return found


def _binding_blockers(pv: Obj, source: Source, claim: Obj | None) -> list[str]:
    phase = phase_of(pv)
    if phase != "Bound":
        why = {
            "Available": "no claim uses it",
            "Released": "its claim is gone",
            "Failed": "its reclaim failed",
        }.get(phase, "it is not bound")
        return [f"PV is {phase or 'in no phase'} ({why}): only Bound PVs are migrated"]
    if claim is None or uid_of(claim) != source.claim_uid:
        return [f"claim {source.claim} (uid {source.claim_uid}) does not exist"]
    if deleting(claim):
        return [f"claim {source.claim} is being deleted"]
    return []


def _pv_blockers(pv: Obj, source: Source) -> list[str]:
    found: list[str] = []
    if deleting(pv):
        found.append("PV is being deleted")
    foreign = [f for f in finalizers_of(pv) if f not in annotations.KUBE_PV_FINALIZERS]
    if foreign:
        found.append(f"PV has finalizers migrate does not own: {', '.join(foreign)}")
    if source.kind == STATIC and source.reclaim_policy == "Delete":
        found.append(
            "static volume with reclaim policy Delete: nothing could delete it after migration; "
            "set persistentVolumeReclaimPolicy to Retain first if that is what you want"
        )
    return found


def _class_params(source: Source, snapshot: Snapshot) -> tuple[ProvisioningParams | None, str]:
    if source.kind != HEKETI:
        return None, ""
    sc = snapshot.storage_class(source.storage_class) if source.storage_class else None
    if sc is None:
        return None, (
            f"StorageClass {source.storage_class or '(none)'} does not exist: the Heketi URL "
            "and Secret of this volume are unknown; re-create the class"
        )
    try:
        return parse_parameters(sc.get("parameters") or {}), ""
    except InvalidParameter as exc:
        return None, f"StorageClass {source.storage_class}: {exc}"


def _heketi_blockers(
    source: Source, params: ProvisioningParams | None, problem: str, settings: Settings
) -> list[str]:
    if not source.heketi_id:
        return [
            "Heketi volume id unknown: no gluster.kubernetes.io/heketi-volume-id annotation "
            "and the path is not vol_<id>"
        ]
    if params is None:
        return [problem]
    return settings.confirm(source, params) if settings.confirm else []


def _tls(
    source: Source, params: ProvisioningParams | None, settings: Settings
) -> tuple[list[str], list[str]]:
    """TLS blockers and notes of a Heketi PV: its class's volumeoptions, Heketi's options."""
    if source.kind != HEKETI:
        return [], []
    evidence: list[str] = []
    if params is not None:
        where = f"StorageClass {source.storage_class} volumeoptions"
        evidence += tls_evidence(params.volume_options, where=where)
    if settings.heketi_options is not None:
        where = f"Heketi volume {source.heketi_id} glustervolumeoptions"
        evidence += tls_evidence(settings.heketi_options(source), where=where)
    return tls_findings(source.volume, evidence, ready=settings.tls_ready)


def _shared_volumes(rows: list[Row]) -> list[Row]:
    """Two PVs on one Gluster volume: Heketi ones are blocked (deleting one claim would
    delete the other's data); static ones get a note (each gets its own handle)."""
    users: dict[str, list[str]] = {}
    for row in rows:
        if row.state != MIGRATED:
            users.setdefault(row.volume, []).append(row.pv)
    out: list[Row] = []
    for row in rows:
        others = sorted(pv for pv in users.get(row.volume, []) if pv != row.pv)
        if not others or row.state not in (READY, BLOCKED):
            out.append(row)
        elif row.kind == HEKETI:
            message = f"Gluster volume {row.volume} is also used by PV {', '.join(others)}"
            out.append(
                replace(
                    row, state=BLOCKED, actions=(), target=None, blockers=(*row.blockers, message)
                )
            )
        else:
            note = f"also used by PV {', '.join(others)}"
            out.append(replace(row, notes=(*row.notes, note)))
    return out


def in_tree_classes(snapshot: Snapshot) -> tuple[ClassRow, ...]:
    return class_rows(snapshot)
