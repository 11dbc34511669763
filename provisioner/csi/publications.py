"""How many target paths of one node may hold a volume at once (CSI access modes).

The CSI spec (csi.proto, `VolumeCapability.AccessMode.Mode`) on each mode:

* `SINGLE_NODE_SINGLE_WRITER`: "Can only be published once as read/write at a
  single workload on a single node": one target path on this node; a second
  one is FAILED_PRECONDITION (what csi-sanity's "with single node multi writer
  capability" spec and Kubernetes' ReadWriteOncePod expect).
* `SINGLE_NODE_MULTI_WRITER`: "published as read/write at multiple workloads on
  a single node": any number of target paths.
* `SINGLE_NODE_WRITER` / `SINGLE_NODE_READER_ONLY`: "published once ... on a
  single node": they limit the *nodes*, not the workloads (the spec added the two
  modes above to tell workloads apart), and Kubernetes publishes a ReadWriteOnce
  volume to every pod of the node that uses it: any number of target paths.
* `MULTI_NODE_*`: several nodes, so several target paths too (which node may
  write under `MULTI_NODE_SINGLE_WRITER` is the CO's business; this plugin has no
  ControllerPublishVolume to see the other nodes).

The other publications come from the kernel's mount table, so the rule holds
after a plugin restart; the access mode the volume was staged with comes from
its stage record (the plugin's --state-dir), so a publish that names another
mode than the stage did cannot open a second workload of a single-writer volume.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Final

from provisioner import errors
from provisioner.csi import csi_pb2
from provisioner.csi.mount_table import MountInfo

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
