"""FUSE clients that outlive the node plugin, on cgroup v2 and cgroup v1 nodes alike.

A stopped container takes every process of its cgroup with it: the runtime kills
what is left in the container's cgroup (runc reads the `devices` hierarchy on
cgroup v1, `cgroup.procs` or `cgroup.kill` on v2; systemd stops the scope). The
GlusterFS FUSE client that `mount -t glusterfs` leaves running serves every pod on
the node that uses the volume, so the plugin starts each mount in cgroups of its
own, outside the container's, in *every* hierarchy the node has mounted:

* **cgroup v2** (`--fuse-cgroup` names a directory of the unified tree): that one
  directory, as before.
* **cgroup v1 and hybrid** (its parent is the tmpfs that holds one mount per
  hierarchy, `cpu`, `memory`, `devices`, `freezer`, `systemd`, `unified`, …): a
  cgroup of the same name in each hierarchy, `cpuset.cpus`/`cpuset.mems` copied
  from the parent so processes may join it.

The mode is read from the node at start-up; the DaemonSet is the same for both.
A node where none of this works (the host tree not mounted, a hierarchy that
refuses the move) still gets a working plugin: the caller says so loudly and
mounts are then only repaired at start-up (recovery.py).
"""

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from provisioner import errors
from provisioner.csi.gluster_tls import GLUSTERFS
from provisioner.csi.mounter import Result, Runner

#: Only the unified (v2) hierarchy has this file in each cgroup.
V2_MARKER: Final = "cgroup.controllers"
#: A v1 cpuset cgroup accepts no process until these hold the CPUs and memory nodes.
CPUSET_FILES: Final = ("cpuset.cpus", "cpuset.mems")
#: The probe joins the cgroups and runs this, so start-up proves the mounts will work.
PROBE_COMMAND: Final = ("true",)
PROBE_TIMEOUT: Final = 30.0


class FuseCgroupsUnavailable(errors.FailedPrecondition):
    """FUSE clients cannot be started outside the container's cgroups on this node."""


@dataclass(frozen=True)
class FuseCgroups:
    """Where FUSE clients start: one directory per cgroup hierarchy of the node."""

    #: "v2" (unified), "v1" (legacy) or "hybrid" (v1 controllers + a unified mount)
    mode: str
    directories: tuple[Path, ...]


def check_path(path: Path) -> Path:
    """`--fuse-cgroup` must be an absolute, normalised path below a cgroup root."""
    text = str(path)
    if not path.is_absolute() or os.path.normpath(text) != text or path.parent == path:
        raise errors.InvalidArgument(f"--fuse-cgroup {text!r} must be an absolute, normalised path")
    return path


def hierarchies(root: Path) -> tuple[str, tuple[Path, ...]]:
    """The cgroup mode at `root` and the hierarchy directories mounted there."""
    if (root / V2_MARKER).is_file():
        return "v2", (root,)
    try:
        entries = sorted(root.iterdir(), key=lambda entry: (entry.is_symlink(), entry.name))
    except OSError as error:
        raise FuseCgroupsUnavailable(f"cannot read {root}: {error.strerror}") from error
    found: dict[Path, Path] = {}
    for entry in entries:  # cpu and cpuacct are often symlinks to cpu,cpuacct: keep that
        if (entry / "cgroup.procs").is_file():
            found.setdefault(entry.resolve(), entry)
    if not found:
        raise FuseCgroupsUnavailable(
            f"{root} holds no cgroup hierarchy: mount the host's /sys/fs/cgroup there"
        )
    unified = any((path / V2_MARKER).is_file() for path in found.values())
    return ("hybrid" if unified else "v1"), tuple(found.values())


def prepare(requested: Path) -> FuseCgroups:
    """Create the FUSE cgroup(s) for `--fuse-cgroup` in every hierarchy of the node."""
    mode, roots = hierarchies(requested.parent)
    directories = (requested,) if mode == "v2" else tuple(r / requested.name for r in roots)
    for directory in directories:
        try:
            directory.mkdir(exist_ok=True)
            _inherit_cpuset(directory)
        except OSError as error:
            raise FuseCgroupsUnavailable(
                f"cannot create the cgroup {directory}: {error.strerror}"
            ) from error
    return FuseCgroups(mode=mode, directories=directories)


def _inherit_cpuset(directory: Path) -> None:
    """A new v1 cpuset cgroup starts empty; give it its parent's CPUs and memory nodes."""
    if (directory / V2_MARKER).exists():
        return
    for name in CPUSET_FILES:
        own = directory / name
        if own.is_file() and not own.read_text(encoding="ascii").strip():
            own.write_text((directory.parent / name).read_text(encoding="ascii"), encoding="ascii")


class CgroupEscapeRunner:
    """Runs `mount -t glusterfs` (or `glusterfs` itself) inside the FUSE cgroups,
    everything else as is.

    The FUSE client that mount.glusterfs leaves running inherits them, so a container
    restart (which kills every process of the container's cgroups) misses it.
    """

    def __init__(
        self, inner: Runner, *, cgroups: FuseCgroups, cgroup_namespace: Path | None = None
    ) -> None:
        self._inner = inner
        self.cgroups = cgroups
        #: The host's cgroup namespace (/proc/1/ns/cgroup with hostPID): entered first,
        #: because a private container cgroup namespace may not move processes out.
        self.cgroup_namespace = cgroup_namespace

    def __call__(self, argv: Sequence[str], *, timeout: float) -> Result:
        starts_client = list(argv[:3]) == ["mount", "-t", "glusterfs"] or (
            list(argv[:1]) == [GLUSTERFS]  # the FUSE client itself (gluster_tls.py)
        )
        if not starts_client:
            return self._inner(argv, timeout=timeout)
        result = self._inner(self._wrapped(argv), timeout=timeout)
        return Result(tuple(argv), result.returncode, result.stdout, result.stderr)

    def _wrapped(self, argv: Sequence[str]) -> list[str]:
        directories = [str(d) for d in self.cgroups.directories]
        wrapped = [sys.executable, "-m", "provisioner.csi.cgroup_exec", *directories, "--", *argv]
        if self.cgroup_namespace is not None:
            wrapped = ["nsenter", f"--cgroup={self.cgroup_namespace}", "--", *wrapped]
        return wrapped

    def probe(self) -> None:
        """Join the cgroups the way a mount will; FuseCgroupsUnavailable when that fails."""
        try:
            result = self._inner(self._wrapped(PROBE_COMMAND), timeout=PROBE_TIMEOUT)
        except (errors.FailedPrecondition, errors.DeadlineExceeded) as error:
            raise FuseCgroupsUnavailable(str(error)) from error
        if result.returncode != 0:
            raise FuseCgroupsUnavailable(result.output() or f"exit status {result.returncode}")


def escape_runner(
    inner: Runner, *, cgroups: FuseCgroups, cgroup_namespace: Path | None
) -> CgroupEscapeRunner:
    """The runner whose start-up probe passes: through `cgroup_namespace` first; when that
    cannot be entered (e.g. a PID 1 whose namespaces are hidden even from root), from the
    plugin's own cgroup namespace, which is the host's wherever the runtime made none (as
    on cgroup v1). FuseCgroupsUnavailable with every reason when neither works."""
    failures: list[str] = []
    for namespace in dict.fromkeys([cgroup_namespace, None]):
        runner = CgroupEscapeRunner(inner, cgroups=cgroups, cgroup_namespace=namespace)
        try:
            runner.probe()
        except FuseCgroupsUnavailable as error:
            failures.append(str(error))
            continue
        return runner
    raise FuseCgroupsUnavailable("; ".join(failures))
