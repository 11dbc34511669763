"""The kernel's mount table, read exactly as the kernel writes it.

/proc/self/mountinfo (proc(5)) is bytes, one mount per line. Inside a field the kernel
escapes only space, tab, newline and backslash (`\\040`, `\\011`, `\\012`, `\\134`);
every other byte of a path passes through as is — `\\r`, `\\x85`, U+2028, bytes that
are not UTF-8. So the table is read as bytes, split on b"\\n" only, each escape undone
on the bytes, and paths decoded with surrogateescape (a path that is not UTF-8 keeps
its bytes and round-trips to the same bytes).

A line that still cannot be parsed belongs to some mount this plugin never made: it is
skipped (and reported once, by whoever reads the table), never a failure of a call
about another mount. A `MountTable` is one snapshot: a Node RPC reads the table once
and decides from that snapshot.
"""

import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

_OCTAL_ESCAPE = re.compile(rb"\\([0-3][0-7]{2})")
#: Distinct unparsable lines remembered as reported; beyond this the oldest is forgotten
#: (and reported once more if it is still there).
MAX_REMEMBERED_LINES: Final = 256


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/self/mountinfo (see proc(5)), paths decoded."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    options: tuple[str, ...]
    fs_type: str
    source: str
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


@dataclass(frozen=True)
class MountTable:
    """One snapshot of the mount table: the mounts in mount order, and the lines skipped."""

    entries: tuple[MountInfo, ...] = ()
    #: Raw lines that could not be parsed (they name no mount this plugin made).
    skipped: tuple[bytes, ...] = field(default=(), compare=False)

    def at(self, path: Path) -> MountInfo | None:
        """The topmost mount whose mount point is `path`, if any."""
        found = self.all_at(path)
        return found[-1] if found else None

    def all_at(self, path: Path) -> list[MountInfo]:
        """Every mount stacked at `path`, bottom first.

        The parent is resolved (the kubelet dir may be reached through a symlink), never
        the mount point itself: resolving it would stat a FUSE mount that may hang.
        """
        wanted = {str(path), os.path.join(os.path.realpath(path.parent), path.name)}
        return [mount for mount in self.entries if mount.mount_point in wanted]


def unescape(field: bytes) -> str:
    r"""Undo the kernel's octal escapes (\040 ...) on the bytes, then decode them
    (UTF-8, surrogateescape: a path that is not UTF-8 keeps its bytes)."""
    raw = _OCTAL_ESCAPE.sub(lambda match: bytes([int(match.group(1), 8)]), field)
    return raw.decode("utf-8", "surrogateescape")


def parse_mountinfo(data: bytes) -> MountTable:
    """Parse /proc/self/mountinfo; lines that do not parse are kept in `skipped`."""
    entries: list[MountInfo] = []
    skipped: list[bytes] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        entry = _parse_line(line)
        if entry is None:
            skipped.append(line)
        else:
            entries.append(entry)
    return MountTable(entries=tuple(entries), skipped=tuple(skipped))


def _parse_line(line: bytes) -> MountInfo | None:
    fields = line.split(b" ")
    try:
        separator = fields.index(b"-", 6)
        return MountInfo(
            mount_id=int(fields[0]),
            parent_id=int(fields[1]),
            root=unescape(fields[3]),
            mount_point=unescape(fields[4]),
            options=tuple(unescape(fields[5]).split(",")),
            fs_type=unescape(fields[separator + 1]),
            source=unescape(fields[separator + 2]),
            super_options=tuple(unescape(fields[separator + 3]).split(",")),
        )
    except (ValueError, IndexError):
        return None


class ReportedOnce:
    """Which lines were reported already: bounded (oldest forgotten first), thread-safe
    (the plugin serves RPCs on several threads)."""

    def __init__(self, *, limit: int = MAX_REMEMBERED_LINES) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def first_time(self, line: bytes) -> bool:
        """Whether `line` was not reported yet (and remember it as reported now)."""
        with self._lock:
            if line in self._seen:
                self._seen.move_to_end(line)
                return False
            self._seen[line] = None
            while len(self._seen) > self._limit:
                self._seen.popitem(last=False)
            return True
