"""Mounting GlusterFS volumes: command runner, mount table, the Mounter seam.

Everything that touches the host's mount table goes through here:
`mount(8)`/`umount(8)` run as argv lists with timeouts through an injectable
`Runner`; the table is read from /proc/self/mountinfo; a FUSE mount whose
client died ("Transport endpoint is not connected") is reported as stale.
"""

import errno
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final, Protocol, TypeVar

from provisioner import errors, log
from provisioner.csi import gluster_tls
from provisioner.csi.mount_table import (
    MAX_REMEMBERED_LINES,
    MountInfo,
    MountTable,
    ReportedOnce,
    parse_mountinfo,
)

_log = log.get_logger("csi.mounter")

#: mount.glusterfs fetches the volfile and waits for the FUSE client to come up;
#: with every server down it gives up after its own retries, well within this.
MOUNT_TIMEOUT: Final = 60.0
#: umount of a FUSE or bind mount is quick unless the kernel is wedged.
UMOUNT_TIMEOUT: Final = 30.0
#: How long a probe (statvfs) of a mount point may take before the mount counts as hung.
STAT_TIMEOUT: Final = 5.0
#: Where the kernel lists the mounts visible to this process.
MOUNTINFO: Final = Path("/proc/self/mountinfo")
#: Filesystem type of a GlusterFS FUSE mount (and of bind mounts of one).
GLUSTER_FSTYPE: Final = "fuse.glusterfs"

_T = TypeVar("_T")


@dataclass(frozen=True)
class Result:
    """What a finished command returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def output(self) -> str:
        """stderr, else stdout, stripped: the command's own explanation."""
        return (self.stderr.strip() or self.stdout.strip())[:2000]


class Runner(Protocol):
    """Runs one command (argv list, never a shell) within `timeout` seconds."""

    def __call__(self, argv: Sequence[str], *, timeout: float) -> Result: ...


class SubprocessRunner:
    """The real runner: subprocess without a shell, C locale, captured output."""

    def __call__(self, argv: Sequence[str], *, timeout: float) -> Result:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"}
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout, check=False, env=env
            )
        except subprocess.TimeoutExpired as error:
            raise errors.DeadlineExceeded(
                f"{argv[0]} did not finish within {timeout:g}s"
            ) from error
        except FileNotFoundError as error:
            raise errors.FailedPrecondition(f"{argv[0]} is not installed on this node") from error
        return Result(tuple(argv), done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class GlusterSource:
    """A Gluster volume and the servers to fetch its volfile from (first = primary)."""

    servers: tuple[str, ...]
    volume: str

    @property
    def device(self) -> str:
        """The mount source, `primary:/volume`."""
        return f"{self.servers[0]}:/{self.volume}"

    def matches(self, mount: MountInfo) -> bool:
        """Whether `mount` is this volume, mounted from any of its servers."""
        host, _, volume = mount.source.partition(":/")
        return mount.fs_type == GLUSTER_FSTYPE and volume == self.volume and host in self.servers


class PathState(Enum):
    """What a stat of a path says about it."""

    MISSING = "missing"
    HEALTHY = "healthy"
    STALE = "stale"  # FUSE client gone or not answering


class Mounter(Protocol):
    """What the node service needs from the host. Paths are absolute and normalised."""

    def table(self) -> MountTable:
        """One snapshot of this mount namespace's mount table."""

    def path_state(self, path: Path) -> PathState:
        """Whether `path` exists and its filesystem answers a statvfs (STALE: the FUSE
        client is gone or hangs)."""

    def mount_gluster(
        self,
        source: GlusterSource,
        target: Path,
        *,
        read_only: bool,
        flags: Sequence[str],
        log_file: Path,
    ) -> None:
        """Mount `source` at the existing directory `target`."""

    def bind_mount(self, source: Path, target: Path, *, read_only: bool) -> None:
        """Bind-mount `source` at the existing directory `target`."""

    def unmount(self, target: Path) -> None:
        """Unmount the topmost mount at `target`."""


def gluster_mount_argv(
    source: GlusterSource, target: Path, *, read_only: bool, flags: Sequence[str], log_file: Path
) -> list[str]:
    """`mount -t glusterfs -o backup-volfile-servers=h2:h3,log-file=...,ro h1:/vol target`."""
    options: list[str] = []
    if len(source.servers) > 1:
        options.append("backup-volfile-servers=" + ":".join(source.servers[1:]))
    options.append(f"log-file={log_file}")
    if read_only:
        options.append("ro")
    options.extend(flag for flag in flags if flag not in ("ro", "rw"))
    return ["mount", "-t", "glusterfs", "-o", ",".join(options), source.device, str(target)]


def bind_mount_argvs(source: Path, target: Path, *, read_only: bool) -> list[list[str]]:
    """A bind mount, then (read-only) a remount that makes it read-only."""
    argvs = [["mount", "--bind", str(source), str(target)]]
    if read_only:
        argvs.append(["mount", "-o", "remount,bind,ro", str(target)])
    return argvs


def unmount_argv(target: Path) -> list[str]:
    """`umount --no-canonicalize target`: umount(8) otherwise stats the path first, which
    blocks on a hung FUSE client; our paths are absolute and normalised already."""
    return ["umount", "--no-canonicalize", str(target)]


class SystemMounter:
    """The real Mounter: mount(8)/umount(8) through a Runner, the kernel's mountinfo."""

    def __init__(
        self,
        *,
        runner: Runner | None = None,
        mountinfo: Path = MOUNTINFO,
        stat_timeout: float = STAT_TIMEOUT,
        tls: gluster_tls.TlsDir | None = None,
    ) -> None:
        self._run = runner if runner is not None else SubprocessRunner()
        #: Where FUSE clients take their TLS certificate, key and CA (None: glusterfs's own).
        self._tls = tls
        self._mountinfo = mountinfo
        self._stat_timeout = stat_timeout
        self._skipped = ReportedOnce(limit=MAX_REMEMBERED_LINES)

    def table(self) -> MountTable:
        table = parse_mountinfo(self._mountinfo.read_bytes())
        for line in table.skipped:
            if self._skipped.first_time(line):
                _log.warning(
                    "mountinfo line skipped: cannot parse it",
                    line=line.decode("utf-8", "backslashreplace")[:500],
                )
        return table

    def path_state(self, path: Path) -> PathState:
        return probe_with_timeout(path, timeout=self._stat_timeout)

    def mount_gluster(
        self,
        source: GlusterSource,
        target: Path,
        *,
        read_only: bool,
        flags: Sequence[str],
        log_file: Path,
    ) -> None:
        since = gluster_tls.log_size(log_file)
        try:
            self._mount_client(source, target, read_only=read_only, flags=flags, log_file=log_file)
        except errors.Internal as error:
            problem = gluster_tls.tls_problem(
                log_file, since=since, volume=source.volume, tls=self._tls
            )
            if problem is not None:
                raise problem from error
            raise

    def _mount_client(
        self, source: GlusterSource, target: Path, *, read_only: bool, flags: Sequence[str],
        log_file: Path,
    ) -> None:  # fmt: skip
        """mount.glusterfs; with a TLS directory the FUSE client itself (gluster_tls.py)."""
        what = f"mounting {source.device} at {target}"
        if self._tls is None:
            argv = gluster_mount_argv(
                source, target, read_only=read_only, flags=flags, log_file=log_file
            )
            self._check(argv, timeout=MOUNT_TIMEOUT, what=what)
            return
        argv = gluster_tls.glusterfs_argv(
            source.servers, source.volume, target, read_only=read_only, flags=flags,
            log_file=log_file, tls=self._tls,
        )  # fmt: skip
        self._check(argv, timeout=MOUNT_TIMEOUT, what=what)
        # As mount.glusterfs: the client has daemonised; its root answers with inode 1.
        inode = _root_inode(target, timeout=MOUNT_TIMEOUT)
        if inode != 1:
            self.unmount(target)
            raise errors.Internal(f"{what} failed: the client does not answer; see {log_file}")

    def bind_mount(self, source: Path, target: Path, *, read_only: bool) -> None:
        first, *rest = bind_mount_argvs(source, target, read_only=read_only)
        self._check(first, timeout=MOUNT_TIMEOUT, what=f"bind-mounting {source} at {target}")
        try:
            for argv in rest:
                self._check(argv, timeout=MOUNT_TIMEOUT, what=f"making {target} read-only")
        except errors.ProvisionerError:
            self.unmount(target)  # never leave a writable bind behind a read-only request
            raise

    def unmount(self, target: Path) -> None:
        self._check(unmount_argv(target), timeout=UMOUNT_TIMEOUT, what=f"unmounting {target}")

    def _check(self, argv: list[str], *, timeout: float, what: str) -> None:
        result = self._run(argv, timeout=timeout)
        if result.returncode != 0:
            raise errors.Internal(f"{what} failed (exit {result.returncode}): {result.output()}")
        _log.debug("command ok", command=argv[0], target=argv[-1])


def unmount_ours(mounter: Mounter, table: MountTable, path: Path) -> None:
    """Unmount every GlusterFS mount stacked at `path` in `table`, topmost first.

    A mount of another filesystem there is not this plugin's: FailedPrecondition, and
    nothing at `path` is unmounted.
    """
    stacked = table.all_at(path)
    foreign = [mount for mount in stacked if mount.fs_type != GLUSTER_FSTYPE]
    if foreign:
        raise errors.FailedPrecondition(
            f"{path} has a {foreign[0].fs_type} mount ({foreign[0].source}) that this plugin "
            "did not make; refusing to unmount it"
        )
    for _ in stacked:
        mounter.unmount(path)


def answer_within(call: Callable[[], _T], *, timeout: float, name: str) -> _T | None:
    """`call()` run in a helper thread; None if it has not returned within `timeout`.

    A stat or statfs of a FUSE mount whose client hangs (alive, not answering)
    blocks for ever; the helper thread is then left behind, never the caller.
    """
    outcome: list[tuple[_T | None, BaseException | None]] = []

    def run() -> None:
        try:
            outcome.append((call(), None))
        except BaseException as error:  # handed to the caller below
            outcome.append((None, error))

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return None
    value, error = outcome[0]
    if error is not None:
        raise error
    return value


def probe_with_timeout(path: Path, *, timeout: float) -> PathState:
    """Whether `path` exists and its filesystem answers, never blocking on a hung FUSE
    client (no answer within `timeout`: STALE).

    The probe is statvfs(2), not stat(2): the kernel answers a stat of a FUSE mount
    from its attribute cache (GlusterFS: attribute-timeout, 1 s by default) even after
    the client died, so a plugin restarting within that second would take a dead mount
    for a healthy one. A statfs request always goes to the FUSE client: a dead one
    answers ENOTCONN at once.
    """
    try:
        state = answer_within(lambda: probe_state(path), timeout=timeout, name=f"probe {path}")
    except OSError as error:
        raise errors.Internal(f"cannot statvfs {path}: {error.strerror}") from error
    return PathState.STALE if state is None else state


def _root_inode(path: Path, *, timeout: float) -> int | None:
    """The inode number of `path` (None: no answer within `timeout`, or an error)."""
    try:
        return answer_within(lambda: os.stat(path).st_ino, timeout=timeout, name=f"stat {path}")
    except OSError:
        return None


def statvfs_with_timeout(path: Path, *, timeout: float) -> os.statvfs_result | None:
    """statvfs(2) of `path`, or None when its filesystem does not answer within `timeout`."""
    return answer_within(lambda: os.statvfs(path), timeout=timeout, name=f"statvfs {path}")


def probe_state(path: Path) -> PathState:
    """statvfs(2) of `path` read as a PathState; blocks while a hung FUSE client does."""
    try:
        os.statvfs(path)
    except FileNotFoundError:
        return PathState.MISSING
    except OSError as error:
        if error.errno in (errno.ENOTCONN, errno.ECONNABORTED):
            return PathState.STALE
        raise
    return PathState.HEALTHY
