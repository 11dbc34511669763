"""One audit run: read, report, and (when asked) delete orphans that are old enough."""

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final, TextIO

from provisioner.audit.findings import (
    AuditSettings,
    ClusterState,
    OrphanVolume,
    Report,
    build_report,
    orphans_of,
)
from provisioner.audit.ledger import (
    DEFAULT_STATE_CONFIGMAP,
    KubeReader,
    OrphanLedger,
    iso,
    record_sightings,
)
from provisioner.audit.output import orphan_rows, print_table
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.errors import HeketiError
from provisioner.heketi.types import Volume
from provisioner.log import get_logger
from provisioner.volumes import VolumeService

log = get_logger("audit")

#: Shortest --older-than accepted: longer than any provisioning in flight (Heketi create,
#: then PV create), so a volume whose PV is about to be written is never taken for an orphan.
MIN_OLDER_THAN_SECONDS: Final = 600.0


@dataclass(frozen=True)
class DeletePolicy:
    older_than_seconds: float
    ledger_namespace: str
    ledger_name: str = DEFAULT_STATE_CONFIGMAP


def _read(
    volumes: VolumeService, heketi: HeketiConfig, kube: KubeReader
) -> tuple[list[Volume], ClusterState]:
    """Heketi first, then Kubernetes. The provisioner creates a claim's volume only
    after the claim exists, so every volume listed here has its claim (or its PV) in
    the later Kubernetes read; read the other way round, a claim created between the
    two reads would make its new volume look orphaned."""
    listed = volumes.clients(heketi).list_volumes()
    return listed, kube.snapshot()


def _with_first_seen(report: Report, ledger: OrphanLedger) -> Report:
    orphans = tuple(
        replace(o, first_seen=iso(ledger.seen[o.id])) if o.id in ledger.seen else o
        for o in report.orphaned_volumes
    )
    return replace(report, orphaned_volumes=orphans)


def run_audit(
    *,
    volumes: VolumeService,
    heketi: HeketiConfig,
    kube: KubeReader,
    settings: AuditSettings,
    delete: DeletePolicy | None = None,
    ledger_namespace: str | None = None,
    now: Callable[[], float] = time.time,
    out: TextIO = sys.stdout,
) -> Report:
    """Audit once; with `delete`, record sightings and delete orphans old enough (through
    the provisioning core, as every volume delete)."""
    report = build_report(*_read(volumes, heketi, kube), settings, now=now())
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
        print_table(out, "Deleting orphaned Heketi volumes", orphan_rows(due))
        out.flush()
        report = _delete_due(
            report, due, volumes=volumes, heketi=heketi, kube=kube, settings=settings
        )
        for orphan in report.deleted:
            ledger.seen.pop(orphan.id, None)
        ledger.save(kube)
    return report


def _delete_due(
    report: Report,
    due: Sequence[OrphanVolume],
    *,
    volumes: VolumeService,
    heketi: HeketiConfig,
    kube: KubeReader,
    settings: AuditSettings,
) -> Report:
    """Delete each due orphan after re-checking, with fresh reads, that it is still one."""
    still = {o.id for o in orphans_of(*_read(volumes, heketi, kube), settings)}
    deleted: list[OrphanVolume] = []
    problems: list[str] = []
    for orphan in due:
        if orphan.id not in still:
            log.info("orphan no longer orphaned; kept", volume_id=orphan.id, name=orphan.name)
            continue
        try:
            volumes.delete_volume(heketi=heketi, volume_id=orphan.id)  # gone already = done
        except HeketiError as exc:
            problems.append(f"{orphan.name} ({orphan.id}): {exc}")
            continue
        log.info("deleted orphaned Heketi volume", volume_id=orphan.id, name=orphan.name)
        deleted.append(orphan)
    return replace(report, deleted=tuple(deleted), delete_errors=tuple(problems))
