"""What the node plugin's alerts need, read from the kernel at each scrape.

The failure Gluster users know best is a mount whose FUSE client died or hangs:
every pod using it gets "Transport endpoint is not connected" or blocks, and
nothing on the Kubernetes side notices. So each scrape looks at the mount table
(the truth after any restart), asks each of our Gluster mounts for a statvfs as
NodeGetVolumeStats does (an answer within 3 s or it counts as stale), and counts the
FUSE client processes serving our mounts.

Ours: GlusterFS FUSE mounts inside the kubelet directory. kubelet's layout tells the
two kinds apart: a pod's target path lies under a `pods` directory
(`<kubelet-dir>/pods/<pod uid>/volumes/kubernetes.io~csi/<pv>/mount`), a staging
path does not (`<kubelet-dir>/plugins/kubernetes.io/csi/<driver>/<hash>/globalmount`).
"""

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from provisioner import errors
from provisioner.csi.mount_table import MountInfo, MountTable
from provisioner.csi.mounter import GLUSTER_FSTYPE, PathState, probe_state
from provisioner.log import get_logger
from provisioner.metrics import PREFIX

log = get_logger("csi.node_signals")

#: How long a scrape waits for the mounts' statvfs answers (all asked side by side): a
#: mount that has not answered by then counts as stale, well inside Prometheus' default
#: 10 s scrape timeout.
SCRAPE_PROBE_TIMEOUT: Final = 3.0
PUBLISHED: Final = "published"
STAGED: Final = "staged"

Probe = Callable[[Path], PathState]


class _Statvfs:
    """One statvfs of one mount point in a thread of its own. A hung FUSE client keeps
    it waiting: the next scrapes find it still running and start no other, so a mount
    that hangs for hours costs one thread, not one per scrape."""

    def __init__(self, path: Path, probe: Probe) -> None:
        self.finished = threading.Event()
        self.state = PathState.MISSING
        self._path, self._probe = path, probe
        threading.Thread(target=self._run, name=f"mount-probe {path}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.state = self._probe(self._path)
        except (OSError, errors.ProvisionerError) as error:  # neither healthy nor stale
            log.warning("cannot probe a mount", path=str(self._path), error=str(error))
        finally:
            self.finished.set()


class NodeMounts(Collector):
    """Staged and published volumes, stale mounts by kind, FUSE client processes."""

    def __init__(
        self,
        *,
        table: Callable[[], MountTable],
        kubelet_dir: Path,
        probe: Probe = probe_state,
        probe_timeout: float = SCRAPE_PROBE_TIMEOUT,
        proc_dir: Path = Path("/proc"),
    ) -> None:
        self._table = table
        self._inside = f"{kubelet_dir}/"
        self._kubelet_dir = kubelet_dir
        self._probe = probe
        self._probe_timeout = probe_timeout
        self._proc = proc_dir
        #: Probes still waiting for an answer, by mount point (shared by overlapping scrapes).
        self._running: dict[str, _Statvfs] = {}
        self._lock = threading.Lock()  # scrapes may overlap

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ours = self.our_mounts()
        kinds = {kind: [m for m in ours if self.kind(m) == kind] for kind in (STAGED, PUBLISHED)}
        yield _gauge("node_staged_volumes", "GlusterFS volumes staged (FUSE-mounted) here.",
                     len(kinds[STAGED]))  # fmt: skip
        yield _gauge("node_published_volumes", "Target paths of pods a volume is bound into.",
                     len(kinds[PUBLISHED]))  # fmt: skip
        stale_points = self._stale(ours)
        stale = GaugeMetricFamily(
            f"{PREFIX}_node_stale_mounts",
            "Our GlusterFS mounts whose FUSE client is gone or does not answer statvfs.",
            labels=["kind"],
        )
        for kind, mounts in kinds.items():
            stale.add_metric([kind], float(sum(m.mount_point in stale_points for m in mounts)))
        yield stale
        yield _gauge("node_fuse_clients", "GlusterFS FUSE client processes serving our mounts.",
                     self.fuse_clients())  # fmt: skip

    def our_mounts(self) -> list[MountInfo]:
        return [
            m
            for m in self._table().entries
            if m.fs_type == GLUSTER_FSTYPE and m.mount_point.startswith(self._inside)
        ]

    def kind(self, mount: MountInfo) -> str:
        below = Path(mount.mount_point).relative_to(self._kubelet_dir).parts
        return PUBLISHED if "pods" in below[:-1] else STAGED

    def _stale(self, mounts: list[MountInfo]) -> set[str]:
        """Mount points that answer ENOTCONN, or nothing within the probe timeout (all
        asked side by side)."""
        with self._lock:
            probes = {m.mount_point: self._probe_of(m.mount_point) for m in mounts}
        deadline = time.monotonic() + self._probe_timeout
        stale = set()
        for path, probe in probes.items():
            answered = probe.finished.wait(max(0.0, deadline - time.monotonic()))
            if not answered or probe.state is PathState.STALE:
                stale.add(path)
        with self._lock:
            self._running = {p: r for p, r in self._running.items() if not r.finished.is_set()}
        return stale

    def _probe_of(self, path: str) -> _Statvfs:
        """The probe of `path` still running (a hung client), else a new one."""
        running = self._running.get(path)
        if running is None or running.finished.is_set():
            running = self._running[path] = _Statvfs(Path(path), self._probe)
        return running

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
