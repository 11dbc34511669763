"""Keep GlusterFS mounts working across node-plugin restarts.

A restarted plugin container takes its processes with it, and with them every
GlusterFS FUSE client it started: staged and published paths then answer
"Transport endpoint is not connected" until kubelet happens to stage again.
Two mechanisms, used together:

* **Survival** (fuse_cgroups.py): with `--fuse-cgroup DIR` each
  `mount -t glusterfs` runs in cgroups outside the plugin container's (every
  hierarchy, cgroup v1 or v2), so the container runtime's "kill every process of
  the container" misses the FUSE client. This needs the plugin in the host PID
  namespace (`hostPID: true`) and the host's cgroup tree mounted (see the DaemonSet).
* **Repair** (`StageRecords` + `repair_stale_mounts`): every successful
  NodeStageVolume leaves a record (volume, servers, flags) in a state directory
  on the host; at start-up, before serving, the plugin remounts each recorded
  staging path whose FUSE client is gone and re-binds every published path that
  pointed at the dead mount, so they read and write again without a kubelet call.
  (Containers already running keep their own copy of the dead mount; they need a
  restart. Survival avoids that.)
"""

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Final

from provisioner import errors, log
from provisioner.csi import validation
from provisioner.csi.mount_table import MountInfo, MountTable
from provisioner.csi.mounter import (
    GLUSTER_FSTYPE,
    GlusterSource,
    Mounter,
    PathState,
    unmount_ours,
)
from provisioner.csi.server import VolumeLocks

_log = log.get_logger("csi.recovery")

#: Records are small JSON files; anything bigger is not ours.
MAX_RECORD_BYTES: Final = 64 * 1024
RECORD_SUFFIX: Final = ".json"


@dataclass(frozen=True)
class StageRecord:
    """How a staging path was mounted, enough to mount it again."""

    volume_id: str
    staging_path: str
    servers: tuple[str, ...]
    volume: str
    read_only: bool
    flags: tuple[str, ...]
    log_file: str
    #: CSI access mode of the NodeStageVolume request (0: unknown, a record of an older
    #: plugin); node.py (check_one_target) limits the target paths of single-workload modes.
    access_mode: int = 0

    @property
    def source(self) -> GlusterSource:
        return GlusterSource(servers=self.servers, volume=self.volume)


class StageRecords:
    """One JSON file per staged path in a directory that outlives the plugin."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self, staging_path: str) -> Path:
        digest = hashlib.sha256(staging_path.encode("utf-8", "surrogateescape")).hexdigest()
        return self.directory / f"{digest[:40]}{RECORD_SUFFIX}"

    def save(self, record: StageRecord) -> None:
        """Write the record atomically (temp file + rename)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self._file(record.staging_path)
        temp = final.with_suffix(".tmp")
        temp.write_text(json.dumps(asdict(record), sort_keys=True), encoding="utf-8")
        os.replace(temp, final)

    def remove(self, staging_path: str) -> None:
        self._file(staging_path).unlink(missing_ok=True)

    def load(self, staging_path: str) -> StageRecord | None:
        """The record of `staging_path`, or None when there is none (or it is unreadable)."""
        path = self._file(staging_path)
        try:
            record = _parse_record(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as error:
            _log.warning("unreadable stage record ignored", file=str(path), error=str(error))
            return None
        return record if record.staging_path == staging_path else None

    def load_all(self) -> list[StageRecord]:
        """Every readable record; unreadable files are logged and skipped."""
        if not self.directory.is_dir():
            return []
        records: list[StageRecord] = []
        for path in sorted(self.directory.glob(f"*{RECORD_SUFFIX}")):
            try:
                records.append(_parse_record(path))
            except (OSError, ValueError, TypeError, KeyError) as error:
                _log.warning("unreadable stage record skipped", file=str(path), error=str(error))
        return records


def _parse_record(path: Path) -> StageRecord:
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise ValueError("record too large")
    raw = json.loads(path.read_text(encoding="utf-8"))
    record = StageRecord(
        volume_id=str(raw["volume_id"]),
        staging_path=str(raw["staging_path"]),
        servers=tuple(str(s) for s in raw["servers"]),
        volume=str(raw["volume"]),
        read_only=bool(raw["read_only"]),
        flags=tuple(str(f) for f in raw["flags"]),
        log_file=str(raw["log_file"]),
        access_mode=int(raw.get("access_mode", 0)),
    )
    _check_record(record)
    return record


def _check_record(record: StageRecord) -> None:
    """A record's values reach mount(8) at repair: they must pass the request rules again."""
    try:
        if not record.servers:
            raise errors.InvalidArgument("no servers")
        for server in record.servers:
            validation.host(server)
        validation.gluster_volume_name(record.volume)
        if validation.mount_flags(record.flags) != record.flags:
            raise errors.InvalidArgument("mount flags not in their checked form")
    except errors.InvalidArgument as error:
        raise ValueError(f"invalid record: {error}") from error
    for text in (record.staging_path, record.log_file):
        if (
            not text.startswith("/")
            or os.path.normpath(text) != text
            or any(c in text for c in ",=")
        ):
            raise ValueError(f"invalid record: path {text!r}")


@dataclass(frozen=True)
class RepairOutcome:
    healthy: tuple[str, ...] = ()  # staging paths whose client survived
    repaired: tuple[str, ...] = ()  # staging paths remounted
    rebound: tuple[str, ...] = ()  # published paths bound again
    forgotten: tuple[str, ...] = ()  # records of paths no longer mounted (node rebooted)
    failed: tuple[str, ...] = ()  # "path: reason"


def repair_stale_mounts(
    *,
    mounter: Mounter,
    records: StageRecords,
    locks: VolumeLocks | None = None,
) -> RepairOutcome:
    """Remount every recorded staging path whose FUSE client died, re-bind its targets.

    With `locks` (the Node service's), each volume is repaired under its lock; a volume
    kubelet is working on right now is left to that call.
    """
    locks = locks if locks is not None else VolumeLocks()
    found: dict[str, list[str]] = {field.name: [] for field in fields(RepairOutcome)}
    table = mounter.table()
    for record in records.load_all():
        staging = Path(record.staging_path)
        staged = table.at(staging)
        if staged is None:
            records.remove(record.staging_path)
            found["forgotten"].append(record.staging_path)
        elif staged.fs_type != GLUSTER_FSTYPE:  # not ours (any more): never stat'ed, left alone
            found["failed"].append(f"{record.staging_path}: {staged.fs_type} is mounted there")
        elif mounter.path_state(staging) is PathState.HEALTHY:
            found["healthy"].append(record.staging_path)
        else:
            _repair_locked(record, mounter=mounter, table=table, locks=locks, found=found)
    outcome = RepairOutcome(**{name: tuple(paths) for name, paths in found.items()})
    _log.info("stale mount check done", **{k: len(v) for k, v in found.items()})
    return outcome


def _repair_locked(
    record: StageRecord,
    *,
    mounter: Mounter,
    table: MountTable,
    locks: VolumeLocks,
    found: dict[str, list[str]],
) -> None:
    """Repair one stale staging path under its volume's lock; note the outcome in `found`."""
    try:
        with locks.hold(record.volume_id):
            found["rebound"] += _repair_one(record, mounter=mounter, table=table)
    except errors.Aborted:
        _log.info("volume busy; left to kubelet's call", volume_id=record.volume_id)
        return
    except errors.ProvisionerError as error:
        found["failed"].append(f"{record.staging_path}: {error}")
        _log.error("stale mount not repaired", volume_id=record.volume_id, error=str(error))
        return
    found["repaired"].append(record.staging_path)


def _dead_binds(
    record: StageRecord, mounter: Mounter, mounts: Sequence[MountInfo]
) -> list[MountInfo]:
    """Other mounts of the same Gluster volume that are stale too: published paths."""
    return [
        m
        for m in mounts
        if m.mount_point != record.staging_path
        and record.source.matches(m)  # a Gluster mount of this volume
        and mounter.path_state(Path(m.mount_point)) is PathState.STALE
    ]


def _repair_one(record: StageRecord, *, mounter: Mounter, table: MountTable) -> list[str]:
    staging = Path(record.staging_path)
    binds = _dead_binds(record, mounter, table.entries)
    _log.warning(
        "GlusterFS client of a staged volume is gone; remounting",
        volume_id=record.volume_id,
        path=record.staging_path,
        published=len(binds),
    )
    for bind in binds:
        mounter.unmount(Path(bind.mount_point))
    unmount_ours(mounter, table, staging)
    mounter.mount_gluster(
        record.source,
        staging,
        read_only=record.read_only,
        flags=record.flags,
        log_file=Path(record.log_file),
    )
    if mounter.path_state(staging) is not PathState.HEALTHY:
        raise errors.Internal(f"remounted {record.source.device} at {staging} is not answering")
    for bind in binds:
        mounter.bind_mount(staging, Path(bind.mount_point), read_only=bind.read_only)
    return [bind.mount_point for bind in binds]
