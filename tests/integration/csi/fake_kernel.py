"""A recording command Runner that plays the kernel's mount table, for hostile-input tests.

`FakeKernel` accepts exactly the command lines the node plugin is allowed to run
and keeps a mountinfo file up to date as mount(8)/umount(8) would, so the real
`SystemMounter` and Node service run unchanged without mounting anything. Every
command is checked against the allowed shapes; a violation is recorded (and the
command fails) so a test can assert that none happened.
"""

import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provisioner import errors
from provisioner.csi import validation
from provisioner.csi.mounter import GLUSTER_FSTYPE, Result

_DEVICE = re.compile(r"^(?P<host>[^:/,\s]+):/(?P<volume>[A-Za-z0-9_][A-Za-z0-9_.-]{0,126})$")


@dataclass
class FakeKernel:
    """Runner + mount table. `root` is the only tree commands may touch."""

    root: Path
    mountinfo: Path
    log_dir: Path
    commands: list[tuple[str, ...]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _mounts: list[tuple[str, str, bool]] = field(default_factory=list)  # point, source, ro
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 100

    def __post_init__(self) -> None:
        self._write()

    # -- the Runner protocol -------------------------------------------------------
    def __call__(self, argv: Sequence[str], *, timeout: float) -> Result:
        command = tuple(argv)
        with self._lock:
            self.commands.append(command)
            try:
                problem = self._apply(command)
            except errors.InvalidArgument as error:
                problem = f"argument would not pass validation ({error})"
            if problem is not None:
                self.violations.append(f"{problem}: {command!r}")
                return Result(command, 32, "", problem)
            self._write()
        return Result(command, 0, "", "")

    # -- checks and effects --------------------------------------------------------
    def _inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        root = os.path.realpath(self.root)
        return real.startswith(root + os.sep) and "\x00" not in path

    def _apply(self, argv: tuple[str, ...]) -> str | None:
        match argv:
            case ("mount", "-t", "glusterfs", "-o", options, device, target):
                return self._gluster(options, device, target)
            case ("mount", "--bind", source, target):
                return self._bind(source, target)
            case ("mount", "-o", "remount,bind,ro", target):
                return self._remount_ro(target)
            case ("umount", "--no-canonicalize", target):
                return self._umount(target)
        return "command not allowed"

    def _gluster(self, options: str, device: str, target: str) -> str | None:
        match = _DEVICE.fullmatch(device)
        if match is None:
            return "mount source is not host:/volume"
        validation.host(match["host"])  # raises on anything a request could smuggle
        problem = self._options(options) or self._target(target)
        if problem is None:
            self._mounts.append((target, device, "ro" in options.split(",")))
        return problem

    def _options(self, options: str) -> str | None:
        for option in options.split(","):
            name, _, value = option.partition("=")
            if name == "backup-volfile-servers":
                for backup in value.split(":"):
                    validation.host(backup)
            elif name == "log-file":
                if Path(value).parent != self.log_dir:
                    return "log file outside the log directory"
            elif option != validation.mount_flag(option):
                return f"mount option {option!r} changed by validation"
        return None

    def _target(self, target: str) -> str | None:
        if not self._inside(target):
            return "target outside the allowed root"
        if not os.path.isdir(target):
            return "target is not a directory"
        return None

    def _bind(self, source: str, target: str) -> str | None:
        if not self._inside(source):
            return "bind source outside the allowed root"
        problem = self._target(target)
        if problem is not None:
            return problem
        found = [m for m in self._mounts if m[0] == source]
        if not found:
            return "bind source is not a mount"
        self._mounts.append((target, found[-1][1], False))
        return None

    def _remount_ro(self, target: str) -> str | None:
        for index in range(len(self._mounts) - 1, -1, -1):
            point, source, _ = self._mounts[index]
            if point == target:
                self._mounts[index] = (point, source, True)
                return None
        return "remount of a path that is not mounted"

    def _umount(self, target: str) -> str | None:
        if not self._inside(target):
            return "umount outside the allowed root"
        for index in range(len(self._mounts) - 1, -1, -1):
            if self._mounts[index][0] == target:
                del self._mounts[index]
                return None
        return "umount of a path that is not mounted"

    # -- the mount table -----------------------------------------------------------
    def _write(self) -> None:
        lines = ["1 0 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw"]
        for offset, (point, source, ro) in enumerate(self._mounts):
            mode = "ro" if ro else "rw"
            lines.append(
                f"{self._next_id + offset} 1 0:{50 + offset} / {_escape(point)} {mode},relatime "
                f"- {GLUSTER_FSTYPE} {_escape(source)} rw,user_id=0,group_id=0"
            )
        temp = self.mountinfo.with_suffix(".tmp")
        temp.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
        os.replace(temp, self.mountinfo)

    def mounted(self) -> list[str]:
        with self._lock:
            return [point for point, _, _ in self._mounts]


def _escape(text: str) -> str:
    """mountinfo's octal escaping of space, tab, newline and backslash."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in text)
