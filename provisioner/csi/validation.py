"""Strict checks of everything a CSI request asks the node to mount.

Nothing from a request reaches a mount command line unless it matches a
pattern that cannot smuggle an option or a path: host names and volume names
have no commas, spaces, `=`, `/` or `..`; paths are absolute, normalised and
inside the kubelet directory; mount flags come from an allow-list. Every
failure is `errors.InvalidArgument` with a message naming the field.
"""

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from provisioner import errors
from provisioner.core.annotations import CTX_SERVERS, CTX_VOLUME
from provisioner.csi import csi_pb2, gluster_tls
from provisioner.csi.mounter import GlusterSource, answer_within

#: CSI's general limit for string fields such as volume_id.
MAX_ID_BYTES: Final = 128
#: More volfile servers than this is a mistake, not a cluster.
MAX_SERVERS: Final = 16
#: Linux PATH_MAX.
MAX_PATH_BYTES: Final = 4096
#: Linux NAME_MAX: longest single path component.
MAX_NAME_BYTES: Final = 255
#: Resolving a request path's parent (symlink check) normally takes microseconds;
#: longer means a hung mount on the way.
RESOLVE_TIMEOUT: Final = 5.0

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
#: Gluster volume names: letters, digits, '_', '-', '.'; no leading '-' or '.'.
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}$")

_Mode = csi_pb2.VolumeCapability.AccessMode.Mode
READ_ONLY_MODES: Final = frozenset({_Mode.SINGLE_NODE_READER_ONLY, _Mode.MULTI_NODE_READER_ONLY})
SUPPORTED_MODES: Final = frozenset(
    {
        _Mode.SINGLE_NODE_WRITER,
        _Mode.SINGLE_NODE_READER_ONLY,
        _Mode.MULTI_NODE_READER_ONLY,
        _Mode.MULTI_NODE_SINGLE_WRITER,
        _Mode.MULTI_NODE_MULTI_WRITER,
        _Mode.SINGLE_NODE_SINGLE_WRITER,
        _Mode.SINGLE_NODE_MULTI_WRITER,
    }
)

#: Mount flags without a value that mount.glusterfs understands and that cannot
#: widen access: read-only, ACLs, atime policy, restrictions, cache behaviour.
FLAGS: Final = (
    frozenset(
        {
            "ro",
            "rw",
            "acl",
            "_netdev",
            "enable-ino32",
            "resolve-gids",
            "fopen-keep-cache",
        }
    )
    | gluster_tls.KERNEL_OPTIONS
)
_COUNT = r"[0-9]{1,9}"
_SECONDS = r"[0-9]{1,6}(?:\.[0-9]{1,3})?"
#: Mount flags with a value: name -> the pattern its value must match.
VALUE_FLAGS: Final[Mapping[str, str]] = {
    "log-level": "TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL|NONE",
    "direct-io-mode": "enable|disable",
    "use-readdirp": "yes|no",
    "kernel-writeback-cache": "yes|no",
    "transport": "tcp|rdma",
    "attribute-timeout": _SECONDS,
    "entry-timeout": _SECONDS,
    "negative-timeout": _SECONDS,
    "gid-timeout": _SECONDS,
    "background-qlen": _COUNT,
    "congestion-threshold": _COUNT,
    "reader-thread-count": _COUNT,
    "lru-limit": _COUNT,
    "invalidate-limit": _COUNT,
    "fetch-attempts": _COUNT,
}
#: Options the driver sets itself; a request may not override them.
DRIVER_OWNED_FLAGS: Final = frozenset(
    {"log-file", "backup-volfile-servers", "backupvolfile-server"}
)


@dataclass(frozen=True)
class MountRequest:
    """A validated mount capability: its access mode, whether that is read-only, its flags."""

    read_only_mode: bool
    flags: tuple[str, ...]
    mode: int = _Mode.UNKNOWN


def required(value: str, field: str) -> str:
    """`value`, or InvalidArgument `<field> is required` when empty."""
    if not value:
        raise errors.InvalidArgument(f"{field} is required")
    return value


def volume_id(value: str) -> str:
    """A present volume_id of at most 128 bytes without control characters."""
    required(value, "volume_id")
    if len(value.encode()) > MAX_ID_BYTES:
        raise errors.InvalidArgument(f"volume_id must be at most {MAX_ID_BYTES} bytes")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise errors.InvalidArgument("volume_id must not contain control characters")
    return value


def node_path(value: str, *, field: str, kubelet_dir: Path) -> Path:
    """An absolute, normalised path strictly inside `kubelet_dir`."""
    return node_paths([(field, value)], kubelet_dir=kubelet_dir)[0]


def stats_path(value: str, *, volume_id: str, kubelet_dir: Path) -> Path:
    """NodeGetVolumeStats' volume_path: required (INVALID_ARGUMENT when empty); a relative
    path holds no volume of ours (NOT_FOUND, as csi-sanity's "volume is not found"
    specs expect for `some/path`); an absolute one is checked as `node_path` does."""
    required(value, "volume_path")
    if not value.startswith("/"):
        raise errors.NotFound(
            f"volume {volume_id} is not published at volume_path {value!r}: this plugin "
            "publishes volumes only at absolute paths"
        )
    return node_path(value, field="volume_path", kubelet_dir=kubelet_dir)


def node_paths(fields: Sequence[tuple[str, str]], *, kubelet_dir: Path) -> list[Path]:
    """Each `(field, value)` checked as `node_path` does, in order; the parents of all
    of them are resolved in one helper thread (a request's paths share one timeout)."""
    paths = [
        _node_path_syntax(value, field=field, kubelet_dir=kubelet_dir) for field, value in fields
    ]
    _check_no_symlink_escapes(
        [(field, path) for (field, _), path in zip(fields, paths, strict=True)],
        kubelet_dir=kubelet_dir,
    )
    return paths


def _node_path_syntax(value: str, *, field: str, kubelet_dir: Path) -> Path:
    required(value, field)
    if "\x00" in value or len(value.encode()) > MAX_PATH_BYTES:
        raise errors.InvalidArgument(f"{field} is not a valid path")
    if any(len(part.encode()) > MAX_NAME_BYTES for part in value.split("/")):
        raise errors.InvalidArgument(
            f"{field} has a path component longer than {MAX_NAME_BYTES} bytes"
        )
    if not value.startswith("/"):
        raise errors.InvalidArgument(f"{field} {value!r} must be an absolute path")
    normal = os.path.normpath(value)
    if normal != value:
        raise errors.InvalidArgument(f"{field} {value!r} must be normalised (expected {normal!r})")
    path = Path(value)
    if path == kubelet_dir or kubelet_dir not in path.parents:
        raise errors.InvalidArgument(
            f"{field} {value!r} must be inside the kubelet directory {kubelet_dir}"
        )
    return path


def _check_no_symlink_escapes(paths: Sequence[tuple[str, Path]], *, kubelet_dir: Path) -> None:
    """mkdir and mount(8) follow symlinks: none may lead out of the kubelet directory.

    A path itself may be a mount point whose FUSE client hangs, so it is never
    stat'ed: its parent is resolved (under a timeout), and the directory entry of
    the last component tells whether it is a symlink.
    """
    parents = _realpaths_with_timeout(paths)
    root = Path(os.path.realpath(kubelet_dir))
    for (field, path), parent in zip(paths, parents, strict=True):
        if parent != root and root not in parent.parents:
            raise errors.InvalidArgument(
                f"{field} {str(path)!r} resolves through a symlink to "
                f"{str(parent / path.name)!r}, outside the kubelet directory {kubelet_dir}"
            )
        if _is_symlink_entry(parent, path.name):
            raise errors.InvalidArgument(
                f"{field} {str(path)!r} is a symlink; it must be a directory"
            )


def _realpaths_with_timeout(paths: Sequence[tuple[str, Path]]) -> list[Path]:
    """The resolved parents of `paths`, in order, from one helper thread: a parent on a
    hung mount blocks that thread (left behind), never the caller beyond RESOLVE_TIMEOUT."""
    resolved: list[Path] = []

    def resolve_all() -> list[Path]:
        for _, path in paths:
            resolved.append(Path(os.path.realpath(path.parent)))
        return resolved

    done = answer_within(resolve_all, timeout=RESOLVE_TIMEOUT, name="realpath")
    if done is None:
        field, path = paths[min(len(resolved), len(paths) - 1)]  # the one it is stuck on
        raise errors.InvalidArgument(
            f"the parent directory of {field} {str(path.parent)!r} does not answer (a hung mount?)"
        )
    return done


def _is_symlink_entry(directory: Path, name: str) -> bool:
    """Whether `directory` lists `name` as a symlink (from the entry: no stat of `name`)."""
    try:
        with os.scandir(directory) as entries:
            return any(entry.name == name and entry.is_symlink() for entry in entries)
    except OSError:
        return False  # a missing or unreadable parent: creating the path fails later, clearly


def host(value: str) -> str:
    """A DNS host name or an IPv4 address; nothing else reaches a mount option."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is not None and address.version == 6:
        raise errors.InvalidArgument(
            f"volume_context {CTX_SERVERS!r}: IPv6 address {value!r} is not supported; "
            "use a host name"
        )
    if address is None and (len(value) > 253 or not _HOSTNAME.fullmatch(value)):
        raise errors.InvalidArgument(
            f"volume_context {CTX_SERVERS!r}: {value!r} is not a valid host name or IPv4 address"
        )
    return value


def gluster_volume_name(value: str) -> str:
    """A Gluster volume name: letters, digits, '_', '-', '.', at most 127 characters."""
    if not _VOLUME_NAME.fullmatch(value) or ".." in value:
        raise errors.InvalidArgument(
            f"volume_context {CTX_VOLUME!r}: {value!r} is not a valid Gluster volume name "
            "(letters, digits, '_', '-' and '.', at most 127, not starting with '-' or '.')"
        )
    return value


def gluster_source(volume_context: Mapping[str, str]) -> GlusterSource:
    """Servers and volume name from a volume_context (keys `servers` and `volume`)."""
    servers_text = required(
        volume_context.get(CTX_SERVERS, ""), f"volume_context key {CTX_SERVERS!r}"
    )
    volume = required(volume_context.get(CTX_VOLUME, ""), f"volume_context key {CTX_VOLUME!r}")
    servers = tuple(dict.fromkeys(host(part.strip()) for part in servers_text.split(",")))
    if len(servers) > MAX_SERVERS:
        raise errors.InvalidArgument(
            f"volume_context {CTX_SERVERS!r} lists {len(servers)} servers; at most {MAX_SERVERS}"
        )
    return GlusterSource(servers=servers, volume=gluster_volume_name(volume))


def mount_flag(flag: str) -> str:
    """One allowed mount flag, else InvalidArgument naming it."""
    name, has_value, value = flag.partition("=")
    if name in DRIVER_OWNED_FLAGS:
        raise errors.InvalidArgument(
            f"mount flag {name!r} is set by the driver and cannot be given in mountOptions"
        )
    if has_value and name in VALUE_FLAGS:
        if re.fullmatch(VALUE_FLAGS[name], value):
            return flag
        raise errors.InvalidArgument(f"mount flag {flag!r}: value must match {VALUE_FLAGS[name]}")
    if not has_value and name in FLAGS:
        return flag
    allowed = sorted(FLAGS) + [f"{key}=…" for key in sorted(VALUE_FLAGS)]
    raise errors.InvalidArgument(
        f"mount flag {flag!r} is not allowed; allowed: {', '.join(allowed)}"
    )


def mount_flags(flags: Iterable[str]) -> tuple[str, ...]:
    """Allowed, de-duplicated flags; `ro` together with `rw` is refused."""
    checked = tuple(dict.fromkeys(mount_flag(flag.strip()) for flag in flags))
    if "ro" in checked and "rw" in checked:
        raise errors.InvalidArgument("mount flags 'ro' and 'rw' contradict each other")
    return checked


def mount_capability(capability: csi_pb2.VolumeCapability, *, present: bool) -> MountRequest:
    """A filesystem capability with a supported access mode and allowed flags."""
    if not present:
        raise errors.InvalidArgument("volume_capability is required")
    if capability.HasField("block"):
        raise errors.InvalidArgument(
            "volume_capability: block access is not supported; GlusterFS volumes are "
            "filesystems (use access type mount / volumeMode: Filesystem)"
        )
    if not capability.HasField("mount"):
        raise errors.InvalidArgument("volume_capability: access type mount is required")
    mode = capability.access_mode.mode
    if mode not in SUPPORTED_MODES:
        raise errors.InvalidArgument("volume_capability.access_mode.mode is required")
    fs_type = capability.mount.fs_type
    if fs_type not in ("", "glusterfs"):
        raise errors.InvalidArgument(
            f"volume_capability.mount.fs_type {fs_type!r} is not supported; "
            "use 'glusterfs' or leave it empty"
        )
    flags = mount_flags(capability.mount.mount_flags)
    return MountRequest(read_only_mode=mode in READ_ONLY_MODES, flags=flags, mode=mode)
