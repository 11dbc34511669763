"""CSI Node service: stage (one Gluster FUSE mount per node), publish (bind mounts).

Each handler reads top to bottom: validate → per-volume lock → idempotency
check → act → respond. Handlers raise `provisioner.errors.*`; the server's
interceptor turns them into gRPC codes.
"""

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import grpc

from provisioner import errors, log
from provisioner.csi import csi_pb2, csi_pb2_grpc, validation
from provisioner.csi.mount_table import MountInfo, MountTable
from provisioner.csi.mounter import (
    GLUSTER_FSTYPE,
    STAT_TIMEOUT,
    Mounter,
    PathState,
    statvfs_with_timeout,
    unmount_ours,
)
from provisioner.csi.recovery import StageRecord, StageRecords
from provisioner.csi.server import VolumeLocks

_log = log.get_logger("csi.node")

#: Default kubelet root; staging and target paths must lie inside it.
DEFAULT_KUBELET_DIR: Final = Path("/var/lib/kubelet")
#: Default directory for the per-volume GlusterFS client logs (log-file=).
DEFAULT_MOUNT_LOG_DIR: Final = Path("/var/log/glusterfs/csi")
#: Directories we create for staging and targets: root and the group only.
DIR_MODE: Final = 0o750

_Rpc = csi_pb2.NodeServiceCapability.RPC
#: What NodeGetCapabilities advertises.
CAPABILITIES: Final = (
    _Rpc.STAGE_UNSTAGE_VOLUME,
    _Rpc.GET_VOLUME_STATS,
    _Rpc.VOLUME_CONDITION,
    _Rpc.SINGLE_NODE_MULTI_WRITER,
)


@dataclass(frozen=True)
class NodeConfig:
    """Settings of the node service (from the `node` command's flags)."""

    node_id: str
    kubelet_dir: Path = DEFAULT_KUBELET_DIR
    mount_log_dir: Path = DEFAULT_MOUNT_LOG_DIR

    def __post_init__(self) -> None:
        if not self.node_id:
            raise errors.InvalidArgument("node id is required (--node-id or NODE_ID)")
        if len(self.node_id.encode()) > 256:
            raise errors.InvalidArgument("node id must be at most 256 bytes")
        for name, path in (
            ("kubelet dir", self.kubelet_dir),
            ("mount log dir", self.mount_log_dir),
        ):
            text = str(path)
            if not path.is_absolute() or os.path.normpath(text) != text:
                raise errors.InvalidArgument(
                    f"{name} {text!r} must be an absolute, normalised path"
                )
            if any(char in text for char in ", \t\n="):
                raise errors.InvalidArgument(f"{name} {text!r} must not contain ',', '=' or spaces")


def fuse_client_missing() -> str | None:
    """Readiness check: why this node cannot mount GlusterFS, or None."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/sbin", "/usr/sbin"])
    if shutil.which("mount.glusterfs", path=search) is None:
        return "mount.glusterfs not found: install the GlusterFS FUSE client (glusterfs-client)"
    return None


class NodeService(csi_pb2_grpc.NodeServicer):
    """The Node service over a `Mounter` (the real one or a test double)."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        mounter: Mounter,
        locks: VolumeLocks | None = None,
        records: StageRecords | None = None,
    ) -> None:
        self._config = config
        self._mounter = mounter
        self._locks = locks if locks is not None else VolumeLocks()
        #: Stage records for repairing mounts after a plugin restart (recovery.py).
        self._records = records

    # ------------------------------------------------------------ info

    def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(node_id=self._config.node_id)

    def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        capabilities = [
            csi_pb2.NodeServiceCapability(rpc=_Rpc(type=rpc_type)) for rpc_type in CAPABILITIES
        ]
        return csi_pb2.NodeGetCapabilitiesResponse(capabilities=capabilities)

    # ------------------------------------------------------------ stage

    def NodeStageVolume(
        self, request: csi_pb2.NodeStageVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeStageVolumeResponse:
        volume_id = validation.volume_id(request.volume_id)
        staging = self._path(request.staging_target_path, "staging_target_path")
        mount = validation.mount_capability(
            request.volume_capability, present=request.HasField("volume_capability")
        )
        source = validation.gluster_source(request.volume_context)
        read_only = mount.read_only_mode or "ro" in mount.flags
        log_file = self._config.mount_log_dir / f"{source.volume}.log"
        record = StageRecord(
            volume_id=volume_id,
            staging_path=str(staging),
            servers=source.servers,
            volume=source.volume,
            read_only=read_only,
            flags=mount.flags,
            log_file=str(log_file),
            access_mode=mount.mode,
        )
        with self._locks.hold(volume_id):
            if self._staged_already(record, self._mounter.table()):
                self._remember(record)
                return csi_pb2.NodeStageVolumeResponse()
            self._config.mount_log_dir.mkdir(parents=True, exist_ok=True)
            with _mount_point(staging, field="staging_target_path"):
                self._mounter.mount_gluster(
                    source, staging, read_only=read_only, flags=mount.flags, log_file=log_file
                )
            self._remember(record)
        _log.info("volume staged", volume_id=volume_id, source=source.device, read_only=read_only)
        return csi_pb2.NodeStageVolumeResponse()

    def _remember(self, record: StageRecord) -> None:
        """Record how a path was staged, so a restarted plugin can repair it."""
        if self._records is None:
            return
        try:
            self._records.save(record)
        except OSError as error:  # the mount works; only a later repair would miss it
            _log.warning(
                "cannot write stage record", path=record.staging_path, error=error.strerror
            )

    def _staged_already(self, wanted: StageRecord, table: MountTable) -> bool:
        """Whether `wanted` is mounted already (ALREADY_EXISTS if in another way)."""
        existing = self._live_mount(table, Path(wanted.staging_path), wanted.volume_id)
        if existing is None:
            return False
        staging, read_only = wanted.staging_path, wanted.read_only
        if not wanted.source.matches(existing):
            raise errors.AlreadyExists(
                f"staging_target_path {staging} already has {existing.source} "
                f"({existing.fs_type}) mounted; refusing to mount {wanted.source.device} there"
            )
        if existing.read_only != read_only:
            raise errors.AlreadyExists(
                f"volume {wanted.volume_id} is already staged at {staging} "
                f"{_mode(existing.read_only)}; unstage it before staging it {_mode(read_only)}"
            )
        self._check_same_flags(wanted)
        return True

    def _check_same_flags(self, wanted: StageRecord) -> None:
        """A repeat stage must ask for the mount flags the mount has (its stage record)."""
        staged = self._records.load(wanted.staging_path) if self._records is not None else None
        if staged is not None and set(staged.flags) != set(wanted.flags):
            raise errors.AlreadyExists(
                f"volume {wanted.volume_id} is already staged at {wanted.staging_path} with "
                "other mount flags; unstage it before staging it with different mountOptions"
            )

    def NodeUnstageVolume(
        self, request: csi_pb2.NodeUnstageVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeUnstageVolumeResponse:
        volume_id = validation.volume_id(request.volume_id)
        staging = self._path(request.staging_target_path, "staging_target_path")
        with self._locks.hold(volume_id):
            unmount_ours(self._mounter, self._mounter.table(), staging)
            if self._records is not None:
                self._records.remove(str(staging))
            _remove_dir(staging, field="staging_target_path")
        _log.info("volume unstaged", volume_id=volume_id)
        return csi_pb2.NodeUnstageVolumeResponse()

    # ------------------------------------------------------------ publish

    def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodePublishVolumeResponse:
        volume_id = validation.volume_id(request.volume_id)
        validation.required(request.target_path, "target_path")
        mount = validation.mount_capability(
            request.volume_capability, present=request.HasField("volume_capability")
        )
        staging, target = self._publish_paths(request)
        if request.volume_context:
            validation.gluster_source(request.volume_context)
        with self._locks.hold(volume_id):
            table = self._mounter.table()
            staged = self._healthy_staging(table, volume_id, staging)
            read_only = request.readonly or mount.read_only_mode or staged.read_only
            if self._published_already(table, volume_id, staged, target, read_only=read_only):
                return csi_pb2.NodePublishVolumeResponse()
            self._check_access_mode(table, volume_id, mount.mode, staged=staged, target=target)
            with _mount_point(target, field="target_path"):
                self._mounter.bind_mount(staging, target, read_only=read_only)
        _log.info("volume published", volume_id=volume_id, read_only=read_only)
        return csi_pb2.NodePublishVolumeResponse()

    def _publish_paths(self, request: csi_pb2.NodePublishVolumeRequest) -> list[Path]:
        """The staging and target paths; the required fields are checked before this."""
        if not request.staging_target_path:  # the spec's code for this case, not INVALID_ARGUMENT
            raise errors.FailedPrecondition(
                "staging_target_path is required: this plugin has STAGE_UNSTAGE_VOLUME; "
                "call NodeStageVolume first and pass its staging_target_path"
            )
        return validation.node_paths(
            [
                ("staging_target_path", request.staging_target_path),
                ("target_path", request.target_path),
            ],
            kubelet_dir=self._config.kubelet_dir,
        )

    def _check_access_mode(
        self, table: MountTable, volume_id: str, mode: int, *, staged: MountInfo, target: Path
    ) -> None:
        """A single-workload volume (by this request or by its stage) gets one target path."""
        staging = Path(staged.mount_point)
        record = self._records.load(str(staging)) if self._records is not None else None
        modes = {mode} if record is None else {mode, record.access_mode}
        if not modes & ONE_TARGET_MODES:
            return
        others = bound_elsewhere(
            table.entries,
            staged=staged,
            skip=(staging, target),
            kubelet_dir=self._config.kubelet_dir,
        )
        check_one_target(volume_id=volume_id, modes=modes, target=target, others=others)

    def _healthy_staging(self, table: MountTable, volume_id: str, staging: Path) -> MountInfo:
        staged = table.at(staging)
        if staged is None or staged.fs_type != GLUSTER_FSTYPE:
            raise errors.FailedPrecondition(
                f"volume {volume_id} is not staged at {staging}; call NodeStageVolume first"
            )
        if self._mounter.path_state(staging) is not PathState.HEALTHY:
            raise errors.FailedPrecondition(
                f"the staging mount of volume {volume_id} at {staging} is stale; "
                "NodeStageVolume remounts it"
            )
        return staged

    def _published_already(
        self, table: MountTable, volume_id: str, staged: MountInfo, target: Path, *, read_only: bool
    ) -> bool:
        """Whether the staged volume is bound at `target` already (ALREADY_EXISTS if not so)."""
        existing = self._live_mount(table, target, volume_id)
        if existing is None:
            return False
        if (existing.source, existing.fs_type) != (staged.source, staged.fs_type):
            raise errors.AlreadyExists(
                f"target_path {target} already has {existing.source} ({existing.fs_type}) "
                f"mounted; refusing to publish volume {volume_id} there"
            )
        if existing.read_only != read_only:
            raise errors.AlreadyExists(
                f"volume {volume_id} is already published at {target} "
                f"{_mode(existing.read_only)}; unpublish it before publishing it {_mode(read_only)}"
            )
        return True

    def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        volume_id = validation.volume_id(request.volume_id)
        target = self._path(request.target_path, "target_path")
        with self._locks.hold(volume_id):
            unmount_ours(self._mounter, self._mounter.table(), target)
            _remove_dir(target, field="target_path")
        _log.info("volume unpublished", volume_id=volume_id)
        return csi_pb2.NodeUnpublishVolumeResponse()

    # ------------------------------------------------------------ stats

    def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: grpc.ServicerContext
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        volume_id = validation.volume_id(request.volume_id)
        path = validation.stats_path(
            request.volume_path, volume_id=volume_id, kubelet_dir=self._config.kubelet_dir
        )
        mounted = self._mounter.table().at(path)
        if mounted is None or mounted.fs_type != GLUSTER_FSTYPE:
            # Another filesystem's mount is never stat'ed; a bare path only to word the answer.
            if mounted is None and self._mounter.path_state(path) is PathState.MISSING:
                raise errors.NotFound(f"volume_path {path} does not exist")
            raise errors.NotFound(f"volume {volume_id} is not mounted at volume_path {path}")
        state = self._mounter.path_state(path)
        if state is PathState.MISSING:
            raise errors.NotFound(f"volume_path {path} does not exist")
        return stats_response(path, stale=state is PathState.STALE)

    # ------------------------------------------------------------ helpers

    def _path(self, value: str, field: str) -> Path:
        return validation.node_path(value, field=field, kubelet_dir=self._config.kubelet_dir)

    def _live_mount(self, table: MountTable, path: Path, volume_id: str) -> MountInfo | None:
        """The mount at `path`; a stale one (its FUSE client died) is unmounted: None.
        A mount of another filesystem is returned as it is, never stat'ed."""
        existing = table.at(path)
        if existing is None or existing.fs_type != GLUSTER_FSTYPE:
            return existing
        if self._mounter.path_state(path) is not PathState.STALE:
            return existing
        _log.warning("stale mount found; mounting again", volume_id=volume_id, path=str(path))
        unmount_ours(self._mounter, table, path)
        return None


def _mode(read_only: bool) -> str:
    return "read-only" if read_only else "read-write"


@contextlib.contextmanager
def _mount_point(path: Path, *, field: str) -> Iterator[None]:
    """The directory `path` for a mount, made if missing and removed again if the
    mount fails (an existing directory, or one something is mounted on, stays)."""
    created = _make_dir(path, field=field)
    try:
        yield
    except BaseException:
        if created:
            with contextlib.suppress(OSError):  # EBUSY/ENOTEMPTY: not ours to remove now
                path.rmdir()
        raise


def _make_dir(path: Path, *, field: str) -> bool:
    """Make the directory `path`; whether it was made by this call."""
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise errors.FailedPrecondition(
                f"{field} {path} exists and is not a directory"
            ) from None
        return False
    except FileNotFoundError as error:
        raise errors.FailedPrecondition(
            f"the parent directory of {field} {path} does not exist"
        ) from error
    return True


def _remove_dir(path: Path, *, field: str) -> None:
    try:
        path.rmdir()
    except FileNotFoundError:
        return
    except OSError as error:
        if error.errno == errno.ENOTEMPTY:
            raise errors.FailedPrecondition(
                f"{field} {path} is not empty after unmounting; refusing to delete its contents"
            ) from error
        if error.errno == errno.ENOTDIR:
            raise errors.FailedPrecondition(f"{field} {path} is not a directory") from error
        raise


# How many target paths of one node may hold a volume at once (CSI access modes).
#
# The CSI spec (csi.proto, `VolumeCapability.AccessMode.Mode`) on each mode:
#
# * `SINGLE_NODE_SINGLE_WRITER`: "Can only be published once as read/write at a
#   single workload on a single node": one target path on this node; a second
#   one is FAILED_PRECONDITION (what csi-sanity's "with single node multi writer
#   capability" spec and Kubernetes' ReadWriteOncePod expect).
# * `SINGLE_NODE_MULTI_WRITER`: "published as read/write at multiple workloads on
#   a single node": any number of target paths.
# * `SINGLE_NODE_WRITER` / `SINGLE_NODE_READER_ONLY`: "published once ... on a
#   single node": they limit the *nodes*, not the workloads (the spec added the two
#   modes above to tell workloads apart), and Kubernetes publishes a ReadWriteOnce
#   volume to every pod of the node that uses it: any number of target paths.
# * `MULTI_NODE_*`: several nodes, so several target paths too (which node may
#   write under `MULTI_NODE_SINGLE_WRITER` is the CO's business; this plugin has no
#   ControllerPublishVolume to see the other nodes).
#
# The other publications come from the kernel's mount table, so the rule holds
# after a plugin restart; the access mode the volume was staged with comes from
# its stage record (the plugin's --state-dir), so a publish that names another
# mode than the stage did cannot open a second workload of a single-writer volume.
_Mode = csi_pb2.VolumeCapability.AccessMode.Mode
#: Modes that allow one target path per node.
ONE_TARGET_MODES: Final = frozenset({_Mode.SINGLE_NODE_SINGLE_WRITER})


def bound_elsewhere(
    mounts: Iterable[MountInfo], *, staged: MountInfo, skip: Iterable[Path], kubelet_dir: Path
) -> list[str]:
    """Mount points inside `kubelet_dir` that bind the whole `staged` mount, except `skip`.

    A bind mount of a FUSE mount shows the same source and filesystem type and the
    root `/`; kubelet's subPath binds of a sub-directory (another root) are part of
    a publication, not publications of their own.
    """
    skipped = {str(path) for path in skip}
    inside = f"{kubelet_dir}/"
    return [
        mount.mount_point
        for mount in mounts
        if (mount.source, mount.fs_type, mount.root) == (staged.source, staged.fs_type, "/")
        and mount.mount_point.startswith(inside)
        and mount.mount_point not in skipped
    ]


def check_one_target(
    *, volume_id: str, modes: Iterable[int], target: Path, others: list[str]
) -> None:
    """FailedPrecondition when a one-target mode meets a publication at another path."""
    single = sorted(_Mode.Name(mode) for mode in set(modes) & ONE_TARGET_MODES)
    if not single or not others:
        return
    raise errors.FailedPrecondition(
        f"volume {volume_id} has access mode {single[0]} and is already published on this "
        f"node at {others[0]}; unpublish it there before publishing it at {target}"
    )


# NodeGetVolumeStats answers: usage of a published GlusterFS mount, or its condition.
#
# A FUSE mount whose client died answers statvfs with ENOTCONN; one whose client hangs
# does not answer at all. Both are an abnormal `VolumeCondition` (the CSI
# VOLUME_CONDITION capability), not an error: kubelet shows it on the pod.
def stats_response(path: Path, *, stale: bool) -> csi_pb2.NodeGetVolumeStatsResponse:
    """Usage and a healthy condition, or an abnormal condition when the mount is stale."""
    stats = None if stale else _statvfs(path)
    if stats is None:
        return csi_pb2.NodeGetVolumeStatsResponse(
            volume_condition=csi_pb2.VolumeCondition(
                abnormal=True,
                message=f"GlusterFS mount at {path} is stale (its client is gone or does not "
                "answer); NodeStageVolume remounts it",
            )
        )
    return csi_pb2.NodeGetVolumeStatsResponse(
        usage=_usage(stats),
        volume_condition=csi_pb2.VolumeCondition(abnormal=False, message="mounted and responding"),
    )


def _statvfs(path: Path) -> os.statvfs_result | None:
    """Usage of the filesystem at `path`; None when its FUSE client is gone or hangs."""
    try:
        return statvfs_with_timeout(path, timeout=STAT_TIMEOUT)
    except OSError as error:
        if error.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            return None
        raise errors.Internal(f"cannot statvfs {path}: {error.strerror}") from error


def _usage(stats: os.statvfs_result) -> list[csi_pb2.VolumeUsage]:
    unit = csi_pb2.VolumeUsage.Unit
    block = stats.f_frsize
    return [
        csi_pb2.VolumeUsage(
            unit=unit.BYTES,
            total=stats.f_blocks * block,
            available=stats.f_bavail * block,
            used=(stats.f_blocks - stats.f_bfree) * block,
        ),
        csi_pb2.VolumeUsage(
            unit=unit.INODES,
            total=stats.f_files,
            available=stats.f_favail,
            used=stats.f_files - stats.f_ffree,
        ),
    ]
