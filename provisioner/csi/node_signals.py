"""What the node plugin's alerts need, read from the kernel at each scrape.

The failure Gluster users know best is a mount whose FUSE client died or hangs:
every pod using it gets "Transport endpoint is not connected" or blocks, and
nothing on the Kubernetes side notices. So each scrape looks at the mount table
(the truth after any restart), probes each of our Gluster mounts with the same
bounded statvfs the plugin uses for NodeGetVolumeStats, and counts the FUSE client
processes serving our mounts.

Ours: GlusterFS FUSE mounts inside the kubelet directory. kubelet's layout tells the
two kinds apart: a pod's target path lies under a `pods` directory
(`<kubelet-dir>/pods/<pod uid>/volumes/kubernetes.io~csi/<pv>/mount`), a staging
path does not (`<kubelet-dir>/plugins/kubernetes.io/csi/<driver>/<hash>/globalmount`).
"""

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from provisioner import errors
from provisioner.csi.mounter import GLUSTER_FSTYPE, MountInfo, PathState, probe_with_timeout
from provisioner.log import get_logger
from provisioner.metrics import PREFIX

log = get_logger("csi.node_signals")

#: Per mount; probes run side by side, so a scrape with hung mounts takes about this
#: long, well inside Prometheus' default 10 s scrape timeout.
SCRAPE_PROBE_TIMEOUT: Final = 3.0
#: Probes in flight at once (a node with hundreds of mounts still answers in time).
MAX_PARALLEL_PROBES: Final = 32
PUBLISHED: Final = "published"
STAGED: Final = "staged"

Probe = Callable[[Path], PathState]


def _probe(path: Path) -> PathState:
    return probe_with_timeout(path, timeout=SCRAPE_PROBE_TIMEOUT)


class NodeMounts(Collector):
    """Staged and published volumes, stale mounts by kind, FUSE client processes."""

    def __init__(
        self,
        *,
        mounts: Callable[[], list[MountInfo]],
        kubelet_dir: Path,
        probe: Probe = _probe,
        proc_dir: Path = Path("/proc"),
    ) -> None:
        self._mounts = mounts
        self._inside = f"{kubelet_dir}/"
        self._kubelet_dir = kubelet_dir
        self._probe = probe
        self._proc = proc_dir

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ours = self.our_mounts()
        kinds = {kind: [m for m in ours if self.kind(m) == kind] for kind in (STAGED, PUBLISHED)}
        yield _gauge("node_staged_volumes", "GlusterFS volumes staged (FUSE-mounted) here.",
                     len(kinds[STAGED]))  # fmt: skip
        yield _gauge("node_published_volumes", "Target paths of pods a volume is bound into.",
                     len(kinds[PUBLISHED]))  # fmt: skip
        stale = GaugeMetricFamily(
            f"{PREFIX}_node_stale_mounts",
            "Our GlusterFS mounts whose FUSE client is gone or does not answer statvfs.",
            labels=["kind"],
        )
        for kind, mounts in kinds.items():
            stale.add_metric([kind], float(self._count_stale(mounts)))
        yield stale
        yield _gauge("node_fuse_clients", "GlusterFS FUSE client processes serving our mounts.",
                     self.fuse_clients())  # fmt: skip

    def our_mounts(self) -> list[MountInfo]:
        return [
            m
            for m in self._mounts()
            if m.fs_type == GLUSTER_FSTYPE and m.mount_point.startswith(self._inside)
        ]

    def kind(self, mount: MountInfo) -> str:
        below = Path(mount.mount_point).relative_to(self._kubelet_dir).parts
        return PUBLISHED if "pods" in below[:-1] else STAGED

    def _count_stale(self, mounts: list[MountInfo]) -> int:
        if not mounts:
            return 0
        with ThreadPoolExecutor(max_workers=min(len(mounts), MAX_PARALLEL_PROBES)) as pool:
            states = list(pool.map(self._state, mounts))
        return sum(state is PathState.STALE for state in states)

    def _state(self, mount: MountInfo) -> PathState:
        try:
            return self._probe(Path(mount.mount_point))
        except errors.ProvisionerError as error:  # neither healthy nor stale: say so once
            log.warning("cannot probe a mount", path=mount.mount_point, error=str(error))
            return PathState.MISSING

    def fuse_clients(self) -> int:
        """Processes named glusterfs whose mount point (their last argument) is ours."""
        count = 0
        for entry in self._proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            except OSError:  # the process ended meanwhile
                continue
            if os.path.basename(argv[0]) == b"glusterfs" and len(argv) > 1:
                count += os.fsdecode(argv[-1]).startswith(self._inside)
        return count


def _gauge(name: str, documentation: str, value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=float(value))
