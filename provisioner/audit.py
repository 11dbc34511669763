"""`glusterfs-provisioner audit`: find what provisioning left behind, delete orphans on request.

Read-only by default. It compares one Heketi server with the cluster and reports:

- **orphaned volumes**: Heketi volumes named the way we name them (``pvc-<uid>`` or a
  class ``volumenameprefix`` pattern) that no PersistentVolume references and whose claim
  does not exist any more;
- **missing volumes**: PVs of our driver (that belong to this Heketi) whose Heketi volume
  is gone;
- **pending claims**: claims of our driver pending longer than ``--pending-after``, with
  the reason and message of their most recent Event;
- **GID collisions**: one supplemental GID held by more than one volume.

Heketi records no creation time, so ``--delete-orphans --older-than D`` judges age by
its own observations: each delete run records in a ConfigMap when it first saw a volume
orphaned, and only deletes a volume that has been orphaned in every run since a sighting
at least ``D`` old, and that is still unreferenced when re-checked just before deletion.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TextIO

from provisioner import errors, names
from provisioner.cli import env_default
from provisioner.controller.kube import KubeApi, KubeNotFound, path_for
from provisioner.controller.secrets import SecretKeys
from provisioner.heketi.errors import HeketiError, HeketiNotFound
from provisioner.heketi.types import Volume
from provisioner.log import get_logger

if TYPE_CHECKING:
    from provisioner.heketi.client import HeketiClient

log = get_logger("audit")

#: Shortest --older-than accepted: longer than any provisioning in flight (Heketi create,
#: then PV create), so a volume whose PV is about to be written is never taken for an orphan.
MIN_OLDER_THAN_SECONDS: Final = 600.0
#: Default --pending-after: a healthy claim binds within seconds; five minutes is "stuck".
DEFAULT_PENDING_AFTER: Final = "5m"
#: ConfigMap holding first sightings of orphans (only written by --delete-orphans runs).
DEFAULT_STATE_CONFIGMAP: Final = "glusterfs-provisioner-audit"
STATE_KEY: Final = "orphans.json"
#: Page size of Kubernetes list calls (keeps memory flat with 10,000s of objects).
KUBE_PAGE_SIZE: Final = 500
#: Exit codes (documented in the README).
EXIT_CLEAN: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_USAGE: Final = 2
EXIT_BACKEND: Final = 3

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_PVC_NAME = re.compile(rf"^{re.escape(names.HEKETI_NAME_PREFIX)}(?P<uid>{_UUID})$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


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
    url = _annotations(pv).get(names.ANN_HEKETI_URL)
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
    (volumes.heketi_volume_name; namespace and claim may be shortened or sanitised).
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
            (csi.get("volumeAttributes") or {}).get(names.CTX_VOLUME),
            _annotations(pv).get(names.ANN_HEKETI_VOLUME_NAME),
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
    return str(spec_class or _annotations(pvc).get(names.ANN_BETA_STORAGE_CLASS) or "")


def _claim_is_ours(pvc: Mapping[str, Any], our_classes: set[str], driver_name: str) -> bool:
    ann = _annotations(pvc)
    if driver_name in (
        ann.get(names.ANN_STORAGE_PROVISIONER),
        ann.get(names.ANN_BETA_STORAGE_PROVISIONER),
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
    """GIDs held by more than one volume (a PV and its own Heketi volume count as one)."""
    holders: dict[int, dict[str, set[str]]] = {}

    def add(gid: int, volume_key: str, label: str) -> None:
        if gid > 0:
            holders.setdefault(gid, {}).setdefault(volume_key, set()).add(label)

    name_to_id = {v.name: v.id for v in volumes}
    for vol in volumes:
        add(vol.gid, vol.id, f"heketi:{vol.name}")
    for pv in state.pvs:
        if not pv_is_ours(pv, driver_name=settings.driver_name, heketi_url=settings.heketi_url):
            continue
        gid_text = _annotations(pv).get(names.ANN_GID, "")
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


def build_report(
    volumes: Sequence[Volume], state: ClusterState, settings: AuditSettings, *, now: float
) -> Report:
    """Every finding of one audit run (pure)."""
    prefixes = class_prefixes(state.storage_classes, driver_name=settings.driver_name)
    prefixes.update(settings.extra_prefixes)
    return Report(
        heketi_url=settings.heketi_url,
        orphaned_volumes=tuple(find_orphans(volumes, state, prefixes=prefixes)),
        missing_volumes=tuple(find_missing(volumes, state, settings)),
        pending_claims=tuple(find_pending(state, settings, now=now)),
        gid_collisions=tuple(find_gid_collisions(volumes, state, settings)),
    )


# ---------------------------------------------------------------------------- durations


def parse_duration(text: str) -> float:
    """``90s``, ``10m``, ``24h``, ``7d``, ``1h30m`` → seconds (InvalidArgument otherwise)."""
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise errors.InvalidArgument(
            f"invalid duration {text!r}: use a number with a unit, e.g. 90s, 10m, 24h, 7d, 1h30m"
        )
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------- kubernetes


class KubeReader:
    """The few Kubernetes reads and writes the audit makes, on plain dicts."""

    def __init__(self, api: KubeApi) -> None:
        self._api = api

    def list(self, path: str) -> Iterator[dict[str, Any]]:
        """All items of a collection, page by page."""
        token = ""
        while True:
            query = [("limit", str(KUBE_PAGE_SIZE))] + ([("continue", token)] if token else [])
            page = self._api.list(path, query=query)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def snapshot(self) -> ClusterState:
        return ClusterState(
            pvs=tuple(self.list(path_for(plural="persistentvolumes"))),
            pvcs=tuple(self.list(path_for(plural="persistentvolumeclaims"))),
            storage_classes=tuple(
                self.list(path_for(group="storage.k8s.io", plural="storageclasses"))
            ),
            events=tuple(self.list(path_for(plural="events"))),
        )

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self._api.get(path)
        except KubeNotFound:
            return None

    def secret_key(self, namespace: str, name: str) -> str:
        """The Heketi key of a `kubernetes.io/glusterfs` Secret, as the controller reads it."""
        return SecretKeys(self._api).key(namespace, name)

    def put(self, path: str, collection: str, obj: dict[str, Any]) -> None:
        if _meta(obj).get("resourceVersion"):
            self._api.update(path, obj)
        else:
            self._api.create(collection, obj)


# ---------------------------------------------------------------------------- ledger


@dataclass
class OrphanLedger:
    """First sightings of orphans, per Heketi URL, kept in a ConfigMap.

    ``seen`` maps volume id → first-seen epoch seconds for the audited Heketi URL.
    """

    namespace: str
    name: str
    heketi_url: str
    seen: dict[str, float] = field(default_factory=dict)
    _doc: dict[str, Any] = field(default_factory=dict)
    _configmap: dict[str, Any] | None = None

    @property
    def _path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    def load(self, kube: KubeReader) -> None:
        self._configmap = kube.get(self._path)
        raw = ((self._configmap or {}).get("data") or {}).get(STATE_KEY, "{}")
        try:
            self._doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise errors.FailedPrecondition(
                f"ConfigMap {self.namespace}/{self.name} key {STATE_KEY} is not JSON ({exc}); "
                "delete the ConfigMap to start the orphan clock again"
            ) from exc
        entries = self._doc.get(self.heketi_url.rstrip("/"), {})
        self.seen = {vid: float(ts) for vid, ts in entries.items()}

    def save(self, kube: KubeReader) -> None:
        self._doc[self.heketi_url.rstrip("/")] = self.seen
        obj = dict(self._configmap or {})
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", "ConfigMap")
        meta = dict(obj.get("metadata") or {"name": self.name, "namespace": self.namespace})
        meta.setdefault("labels", {})["app.kubernetes.io/managed-by"] = "glusterfs-provisioner"
        obj["metadata"] = meta
        obj["data"] = {STATE_KEY: json.dumps(self._doc, sort_keys=True)}
        collection = f"/api/v1/namespaces/{self.namespace}/configmaps"
        kube.put(self._path, collection, obj)
        self._configmap = kube.get(self._path)


def record_sightings(
    report: Report, ledger: OrphanLedger, *, now: float
) -> tuple[OrphanVolume, ...]:
    """Keep first sightings of current orphans, forget the rest; orphans with first_seen."""
    current = {o.id for o in report.orphaned_volumes}
    ledger.seen = {vid: ts for vid, ts in ledger.seen.items() if vid in current}
    for vid in current:
        ledger.seen.setdefault(vid, now)
    return tuple(replace(o, first_seen=_iso(ledger.seen[o.id])) for o in report.orphaned_volumes)


# ---------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class DeletePolicy:
    older_than_seconds: float
    ledger_namespace: str
    ledger_name: str = DEFAULT_STATE_CONFIGMAP


def _with_first_seen(report: Report, ledger: OrphanLedger) -> Report:
    orphans = tuple(
        replace(o, first_seen=_iso(ledger.seen[o.id])) if o.id in ledger.seen else o
        for o in report.orphaned_volumes
    )
    return replace(report, orphaned_volumes=orphans)


def run_audit(
    *,
    heketi: HeketiClient,
    kube: KubeReader,
    settings: AuditSettings,
    delete: DeletePolicy | None = None,
    ledger_namespace: str | None = None,
    now: Callable[[], float] = time.time,
    out: TextIO = sys.stdout,
) -> Report:
    """Audit once; with `delete`, record sightings and delete orphans old enough."""
    state = kube.snapshot()
    report = build_report(heketi.list_volumes(), state, settings, now=now())
    if delete is None:
        if ledger_namespace:
            ledger = OrphanLedger(ledger_namespace, DEFAULT_STATE_CONFIGMAP, settings.heketi_url)
            ledger.load(kube)
            report = _with_first_seen(report, ledger)
        return report
    ledger = OrphanLedger(delete.ledger_namespace, delete.ledger_name, settings.heketi_url)
    ledger.load(kube)
    before = dict(ledger.seen)
    orphans = record_sightings(report, ledger, now=now())
    ledger.save(kube)
    cutoff = now() - delete.older_than_seconds
    due = tuple(o for o in orphans if o.id in before and before[o.id] <= cutoff)
    waiting = tuple(o for o in orphans if o not in due)
    report = replace(report, orphaned_volumes=orphans, waiting=waiting)
    if due:
        print_table(out, "Deleting orphaned Heketi volumes", _orphan_rows(due))
        out.flush()
        report = _delete_due(report, due, heketi=heketi, kube=kube, settings=settings)
        for orphan in report.deleted:
            ledger.seen.pop(orphan.id, None)
        ledger.save(kube)
    return report


def _delete_due(
    report: Report,
    due: Sequence[OrphanVolume],
    *,
    heketi: HeketiClient,
    kube: KubeReader,
    settings: AuditSettings,
) -> Report:
    """Delete each due orphan after re-checking, with fresh reads, that it is still one."""
    fresh = build_report(heketi.list_volumes(), kube.snapshot(), settings, now=time.time())
    still = {o.id for o in fresh.orphaned_volumes}
    deleted: list[OrphanVolume] = []
    problems: list[str] = []
    for orphan in due:
        if orphan.id not in still:
            log.info("orphan no longer orphaned; kept", volume_id=orphan.id, name=orphan.name)
            continue
        try:
            heketi.delete_volume(orphan.id)
        except HeketiNotFound:
            pass
        except HeketiError as exc:
            problems.append(f"{orphan.name} ({orphan.id}): {exc}")
            continue
        log.info("deleted orphaned Heketi volume", volume_id=orphan.id, name=orphan.name)
        deleted.append(orphan)
    return replace(report, deleted=tuple(deleted), delete_errors=tuple(problems))


# ---------------------------------------------------------------------------- output


def _orphan_rows(orphans: Iterable[OrphanVolume]) -> list[list[str]]:
    rows = [["ID", "NAME", "SIZE", "GID", "CLAIM UID", "FIRST SEEN ORPHANED"]]
    for o in orphans:
        rows.append([o.id, o.name, f"{o.size_gib}Gi", str(o.gid), o.claim_uid, o.first_seen or "-"])
    return rows


def print_table(out: TextIO, title: str, rows: list[list[str]]) -> None:
    """A titled, column-aligned table; "(none)" when only the header row is present."""
    out.write(f"{title}:\n")
    if len(rows) == 1:
        out.write("  (none)\n\n")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    out.write("\n")


def write_report(report: Report, out: TextIO, *, output: str) -> None:
    if output == "json":
        doc = asdict(report)
        doc["heketi_url"] = report.heketi_url
        out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    print_table(
        out,
        f"Orphaned Heketi volumes on {report.heketi_url} (no PV, no claim)",
        _orphan_rows(report.orphaned_volumes),
    )
    rows = [["PV", "VOLUME HANDLE", "CLAIM", "PHASE"]]
    rows += [[m.pv, m.volume_handle, m.claim, m.phase] for m in report.missing_volumes]
    print_table(out, "PVs whose Heketi volume is gone", rows)
    rows = [["CLAIM", "CLASS", "PENDING", "REASON", "MESSAGE"]]
    rows += [
        [p.claim, p.storage_class, _human_seconds(p.pending_seconds), p.reason, p.message]
        for p in report.pending_claims
    ]
    print_table(out, "Claims stuck pending", rows)
    rows = [["GID", "HELD BY"]]
    rows += [[str(c.gid), ", ".join(c.holders)] for c in report.gid_collisions]
    print_table(out, "GID collisions", rows)
    if report.deleted or report.waiting or report.delete_errors:
        print_table(out, "Deleted orphaned volumes", _orphan_rows(report.deleted))
        print_table(out, "Orphans not yet old enough to delete", _orphan_rows(report.waiting))
        rows = [["ERROR"]] + [[e] for e in report.delete_errors]
        print_table(out, "Deletions that failed", rows)


def _human_seconds(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m"


# ---------------------------------------------------------------------------- command


@dataclass(frozen=True)
class AuditCommandConfig:
    """Validated flags of `glusterfs-provisioner audit` (no secret values in here)."""

    kubeconfig: str | None
    driver_name: str
    heketi_url: str
    heketi_user: str
    heketi_auth: bool
    heketi_key_file: str | None
    heketi_secret: tuple[str, str] | None
    heketi_ca_file: str | None
    pending_after_seconds: float
    prefixes: tuple[str, ...]
    output: str
    delete: DeletePolicy | None
    state_namespace: str


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="report orphaned Heketi volumes, PVs without volumes, stuck claims, GID collisions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_flags(parser)
    parser.set_defaults(run=run)


def _add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kubeconfig",
        default=env_default("KUBECONFIG"),
        help="kubeconfig file (env KUBECONFIG); in-cluster config when absent",
    )
    p.add_argument(
        "--driver-name",
        default=env_default("DRIVER_NAME", names.DRIVER_NAME),
        help=f"CSI driver name of our PVs (env DRIVER_NAME; default {names.DRIVER_NAME})",
    )
    p.add_argument(
        "--heketi-url",
        default=env_default("HEKETI_URL"),
        help="Heketi REST URL, http(s)://host:port (env HEKETI_URL; required)",
    )
    p.add_argument(
        "--heketi-user",
        default=env_default("HEKETI_USER", "admin"),
        help="Heketi user (env HEKETI_USER; default admin)",
    )
    p.add_argument(
        "--heketi-secret",
        default=env_default("HEKETI_SECRET"),
        metavar="NAMESPACE/NAME",
        help="Secret holding the Heketi key under data.key (env HEKETI_SECRET)",
    )
    p.add_argument(
        "--heketi-key-file",
        default=env_default("HEKETI_KEY_FILE"),
        metavar="PATH",
        help="file holding the Heketi key (env HEKETI_KEY_FILE); "
        "or put the key itself in env HEKETI_KEY",
    )
    p.add_argument(
        "--no-heketi-auth",
        action="store_true",
        help="Heketi runs without authentication: send no Authorization header",
    )
    p.add_argument(
        "--heketi-ca-file",
        default=env_default("HEKETI_CA_FILE"),
        metavar="PATH",
        help="PEM CA bundle to verify an https Heketi (env HEKETI_CA_FILE; "
        "default: the system trust store)",
    )
    p.add_argument(
        "--volume-name-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="also treat <PREFIX>_<ns>_<claim>_<uid> volumes as ours (repeatable; "
        "prefixes of our StorageClasses are found automatically)",
    )
    p.add_argument(
        "--pending-after",
        default=DEFAULT_PENDING_AFTER,
        metavar="DURATION",
        help=f"report claims pending at least this long (default {DEFAULT_PENDING_AFTER})",
    )
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument(
        "--delete-orphans",
        action="store_true",
        help="delete orphaned Heketi volumes orphaned for --older-than (prints them first)",
    )
    p.add_argument(
        "--older-than",
        metavar="DURATION",
        help="with --delete-orphans: how long a volume must have been seen orphaned "
        f"(at least {int(MIN_OLDER_THAN_SECONDS // 60)}m), e.g. 24h",
    )
    p.add_argument(
        "--state-namespace",
        default=env_default("POD_NAMESPACE", "kube-system"),
        help="namespace of the ConfigMap recording orphan sightings "
        f"({DEFAULT_STATE_CONFIGMAP}; env POD_NAMESPACE; default kube-system)",
    )


def config_from_args(args: argparse.Namespace) -> AuditCommandConfig:
    """Flags → config; InvalidArgument with an exact message on bad usage."""
    if not args.heketi_url:
        raise errors.InvalidArgument("--heketi-url (or env HEKETI_URL) is required")
    if not re.match(r"^https?://[^/\s]+", args.heketi_url):
        raise errors.InvalidArgument(
            f"--heketi-url {args.heketi_url!r} must start with http:// or https://"
        )
    secret = None
    if args.heketi_secret:
        ns, _, name = args.heketi_secret.partition("/")
        if not ns or not name or "/" in name:
            raise errors.InvalidArgument("--heketi-secret must be NAMESPACE/NAME")
        secret = (ns, name)
    if secret and args.heketi_key_file:
        raise errors.InvalidArgument("give either --heketi-secret or --heketi-key-file, not both")
    return AuditCommandConfig(
        kubeconfig=args.kubeconfig,
        driver_name=args.driver_name,
        heketi_url=args.heketi_url.rstrip("/"),
        heketi_user=args.heketi_user,
        heketi_auth=not args.no_heketi_auth,
        heketi_key_file=args.heketi_key_file,
        heketi_secret=secret,
        heketi_ca_file=args.heketi_ca_file,
        pending_after_seconds=parse_duration(args.pending_after),
        prefixes=tuple(args.volume_name_prefix),
        output=args.output,
        delete=_delete_policy(args),
        state_namespace=args.state_namespace,
    )


def _delete_policy(args: argparse.Namespace) -> DeletePolicy | None:
    if not args.delete_orphans:
        if args.older_than:
            raise errors.InvalidArgument("--older-than only applies with --delete-orphans")
        return None
    if not args.older_than:
        raise errors.InvalidArgument(
            "--delete-orphans needs --older-than DURATION (e.g. 24h): Heketi records no "
            "creation time, so a volume is deleted only after audits saw it orphaned that long"
        )
    seconds = parse_duration(args.older_than)
    if seconds < MIN_OLDER_THAN_SECONDS:
        raise errors.InvalidArgument(
            f"--older-than {args.older_than} is too short: use at least "
            f"{int(MIN_OLDER_THAN_SECONDS // 60)}m so volumes being provisioned right now "
            "are never deleted"
        )
    return DeletePolicy(older_than_seconds=seconds, ledger_namespace=args.state_namespace)


def heketi_key(
    config: AuditCommandConfig, kube: KubeReader, environ: Mapping[str, str]
) -> str | None:
    """The Heketi key from the Secret, the key file or env HEKETI_KEY (never a flag)."""
    if not config.heketi_auth:
        return None
    if config.heketi_secret:
        return kube.secret_key(*config.heketi_secret)
    if config.heketi_key_file:
        try:
            with open(config.heketi_key_file, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise errors.InvalidArgument(
                f"cannot read --heketi-key-file {config.heketi_key_file}: {exc.strerror}"
            ) from exc
    return environ.get("HEKETI_KEY") or None


def execute(
    config: AuditCommandConfig,
    *,
    api_client: Any,
    environ: Mapping[str, str],
    out: TextIO,
    now: Callable[[], float] = time.time,
) -> int:
    """Run the audit with an ApiClient; returns the exit code."""
    from provisioner.heketi.client import HeketiClient, HeketiConfig

    kube = KubeReader(KubeApi(api_client))
    heketi_config = HeketiConfig(
        url=config.heketi_url,
        user=config.heketi_user,
        key=heketi_key(config, kube, environ),
        auth_enabled=config.heketi_auth,
        ca_bundle=config.heketi_ca_file,
    )
    heketi = HeketiClient(heketi_config)
    try:
        settings = AuditSettings(
            driver_name=config.driver_name,
            heketi_url=config.heketi_url,
            pending_after_seconds=config.pending_after_seconds,
            extra_prefixes=config.prefixes,
        )
        report = run_audit(
            heketi=heketi,
            kube=kube,
            settings=settings,
            delete=config.delete,
            ledger_namespace=config.state_namespace,
            now=now,
            out=out,
        )
    finally:
        heketi.close()
    write_report(report, out, output=config.output)
    return EXIT_FINDINGS if report.has_findings else EXIT_CLEAN


def run(args: argparse.Namespace) -> int:
    """Entry point of `glusterfs-provisioner audit`."""
    from provisioner.controller.command import api_client as kube_api_client

    try:
        config = config_from_args(args)
    except errors.InvalidArgument as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        api_client = kube_api_client(config.kubeconfig)
        return execute(config, api_client=api_client, environ=_environ(), out=sys.stdout)
    except errors.InvalidArgument as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except errors.ProvisionerError as exc:
        print(f"audit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BACKEND


def _environ() -> Mapping[str, str]:
    import os

    return os.environ
