"""This machine's real cgroup hierarchies, seen from the test's own cgroups.

Tests never create cgroups at a hierarchy's root (they run inside a session's
cgroups, which are not theirs to leave): `own_cgroup_root` builds a directory that
looks like the host's /sys/fs/cgroup to the plugin, one entry per mounted hierarchy,
each a symlink to the cgroup this test process is in there. Cgroups the plugin makes
"at the root" are then children of the test's own, in every real hierarchy.
"""

import time
from collections.abc import Iterator
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


def cgroups_of(pid: int | str) -> dict[str, str]:
    """/proc/PID/cgroup as {hierarchy controllers ('' for the unified one): path}."""
    lines = Path(f"/proc/{pid}/cgroup").read_text(encoding="ascii").splitlines()
    return {c: path for _, c, path in (line.split(":", 2) for line in lines)}


def mount_dir(controllers: str) -> Path:
    """Where the hierarchy is mounted by the usual convention (systemd's and this machine's)."""
    if not controllers:
        unified = CGROUP_FS / "unified"
        return unified if (unified / "cgroup.procs").exists() else CGROUP_FS
    return CGROUP_FS / controllers.removeprefix("name=")


def v1_hierarchies() -> dict[str, Path]:
    """{controllers: mount dir} of every mounted cgroup v1 hierarchy (empty on a v2-only node)."""
    if (CGROUP_FS / "cgroup.controllers").exists():
        return {}
    found = {c: mount_dir(c) for c in cgroups_of("self")}
    return {c: d for c, d in found.items() if (d / "cgroup.procs").exists()}


def own_cgroup_root(directory: Path) -> Path:
    """`directory`, filled with one symlink per hierarchy to this process's cgroup there."""
    directory.mkdir()
    for controllers, path in cgroups_of("self").items():
        mounted = mount_dir(controllers)
        if (mounted / "cgroup.procs").exists():
            (directory / mounted.name).symlink_to(mounted / path.lstrip("/"))
    return directory


def remove(cgroups: Iterator[Path] | list[Path], *, deadline: float = 20.0) -> None:
    """rmdir each cgroup once its last process has left (a FUSE client exits after unmount)."""
    until = time.monotonic() + deadline
    for group in cgroups:
        while group.exists():
            try:
                group.rmdir()
            except OSError:
                if time.monotonic() > until:
                    raise
                time.sleep(0.1)
