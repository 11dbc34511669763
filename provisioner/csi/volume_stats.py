"""NodeGetVolumeStats answers: usage of a published GlusterFS mount, or its condition.

A FUSE mount whose client died answers statvfs with ENOTCONN; one whose client hangs
does not answer at all. Both are an abnormal `VolumeCondition` (the CSI
VOLUME_CONDITION capability), not an error: kubelet shows it on the pod.
"""

import errno
import os
from pathlib import Path

from provisioner import errors
from provisioner.csi import csi_pb2
from provisioner.csi.mounter import STAT_TIMEOUT, statvfs_with_timeout


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
