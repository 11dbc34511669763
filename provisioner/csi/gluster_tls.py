"""TLS-encrypted Gluster volumes: the client's certificate, key and CA from a directory.

A volume with `client.ssl on` makes its FUSE client load a certificate, a key and a CA
list from paths compiled into glusterfs (Debian: /usr/lib/ssl/glusterfs.pem, .key, .ca;
Red Hat: /etc/ssl/), which the plugin's container does not have. With
`--gluster-tls-dir DIR` every FUSE mount takes them from DIR instead, through the
client's `*-client-*.transport.socket.ssl-own-cert` (and `ssl-private-key`,
`ssl-ca-list`) translator options; a volume without TLS ignores them.

/sbin/mount.glusterfs (glusterfs 10.3, Debian) passes at most one `xlator-option` (a
second overwrites the first), so with a TLS directory the plugin starts the client as
mount.glusterfs would — `glusterfs --process-name fuse --volfile-server=… --volfile-id=…`
with the same translation of mount options (read from that script) — plus the three
options, and checks the mount answers as the script does (the root's inode is 1).

When a mount fails, the client log says why (socket.c `ssl_setup_connection_params`:
"could not load our cert at PATH", "could not load private key at PATH", "could not load
CA list"); that becomes FAILED_PRECONDITION naming the file and how to provide it.
"""

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from provisioner import errors

#: File names in the TLS directory: the keys of the `glusterfs-tls` Secret.
CERT_NAME: Final = "glusterfs.pem"
KEY_NAME: Final = "glusterfs.key"
CA_NAME: Final = "glusterfs.ca"
#: Where Debian's glusterfs (our image) looks when no directory is given.
DEFAULT_DIR: Final = Path("/usr/lib/ssl")
#: The client protocol translators of a volume graph (vol-client-0, vol-client-1, …).
_CLIENTS = "*-client-*.transport.socket"
#: The FUSE client mount.glusterfs starts.
GLUSTERFS: Final = "glusterfs"
#: How much of a client log a failed mount reads back.
MAX_LOG_READ: Final = 256 * 1024

#: mount.glusterfs (10.3): options without a value → glusterfs arguments.
_SWITCHES: Final = {
    "ro": "--read-only",
    "acl": "--acl",
    "enable-ino32": "--enable-ino32",
    "resolve-gids": "--resolve-gids",
    "fopen-keep-cache": "--fopen-keep-cache=true",
}
#: mount.glusterfs (10.3): kernel mount options it gathers into --fuse-mountopts.
KERNEL_OPTIONS: Final = frozenset(
    {
        "atime",
        "noatime",
        "diratime",
        "nodiratime",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "lazyatime",
        "nolazyatime",
        "nodev",
        "noexec",
        "nosuid",
    }
)
#: mount.glusterfs (10.3): options with a value whose glusterfs argument has another name.
_RENAMED: Final = {
    "fetch-attempts": "volfile-max-fetch-attempts",
    "transport": "volfile-server-transport",
}
#: What each log message is about (socket.c, glusterfs 10.3).
_LOG_PROBLEMS: Final = (
    (re.compile(r"could not load our cert at (\S+)"), "certificate", CERT_NAME),
    (re.compile(r"could not load private key at (\S+)"), "private key", KEY_NAME),
    (re.compile(r"could not load CA list()"), "CA list", CA_NAME),
)


@dataclass(frozen=True)
class TlsDir:
    """The directory the FUSE clients take their certificate, key and CA from."""

    path: Path

    def __post_init__(self) -> None:
        text = str(self.path)
        if not self.path.is_absolute() or os.path.normpath(text) != text:
            raise errors.InvalidArgument(
                f"--gluster-tls-dir {text!r} must be an absolute, normalised path"
            )
        if any(char in text for char in ",= \t\n*"):
            raise errors.InvalidArgument(
                f"--gluster-tls-dir {text!r} must not contain ',', '=', '*' or spaces"
            )

    def xlator_options(self) -> list[str]:
        return [
            f"--xlator-option={_CLIENTS}.ssl-own-cert={self.path / CERT_NAME}",
            f"--xlator-option={_CLIENTS}.ssl-private-key={self.path / KEY_NAME}",
            f"--xlator-option={_CLIENTS}.ssl-ca-list={self.path / CA_NAME}",
        ]


def glusterfs_argv(
    servers: Sequence[str],
    volume: str,
    target: Path,
    *,
    read_only: bool,
    flags: Sequence[str],
    log_file: Path,
    tls: TlsDir,
) -> list[str]:
    """The FUSE client's command line, as mount.glusterfs builds it, plus the TLS options."""
    wanted = [*(["ro"] if read_only else []), *(f for f in flags if f not in ("ro", "rw"))]
    argv = [GLUSTERFS, "--process-name", "fuse"]
    argv += [f"--volfile-server={server}" for server in servers]
    transport = ""
    kernel: list[str] = []
    for flag in wanted:
        name, has_value, value = flag.partition("=")
        if name in _SWITCHES:
            argv.append(_SWITCHES[name])
        elif name in KERNEL_OPTIONS:
            kernel.append(name)
        elif has_value:
            argv.append(f"--{_RENAMED.get(name, name)}={value}")
            transport = value if name == "transport" else transport
    # mount.glusterfs keeps the "/" of host:/volume: the mount's source reads host:/volume.
    volume_id = f"/{volume}.{transport}" if transport else f"/{volume}"
    argv += [f"--volfile-id={volume_id}", f"--log-file={log_file}", *tls.xlator_options()]
    if kernel:
        argv.append(f"--fuse-mountopts={','.join(kernel)}")
    return [*argv, str(target)]


def log_size(log_file: Path) -> int:
    """The client log's size now: a failed mount reads only what was written after it."""
    try:
        return log_file.stat().st_size
    except OSError:
        return 0


def tls_problem(
    log_file: Path, *, since: int, volume: str, tls: TlsDir | None
) -> errors.FailedPrecondition | None:
    """FailedPrecondition naming the file the client could not load, if its log says so."""
    text = _read_from(log_file, since)
    for pattern, what, name in _LOG_PROBLEMS:
        found = pattern.search(text)
        if found is None:
            continue
        directory = tls.path if tls is not None else DEFAULT_DIR
        path = found.group(1) or str(directory / name)
        state = "is missing" if not os.path.exists(path) else "cannot be loaded"
        return errors.FailedPrecondition(
            f"volume {volume} uses TLS and the GlusterFS client's {what} {path} {state} "
            f"(client log {log_file}); {_how_to_provide(tls)}"
        )
    return None


def _how_to_provide(tls: TlsDir | None) -> str:
    keys = f"{CERT_NAME}, {KEY_NAME} and {CA_NAME}"
    if tls is None:
        return (
            "start the node plugin with --gluster-tls-dir (GLUSTER_TLS_DIR) naming a "
            f"directory with the client's {keys}: the deploy/components/gluster-tls "
            "component mounts them from the Secret glusterfs-tls"
        )
    return (
        f"put the client's {keys} into the Secret glusterfs-tls, which the node plugin "
        f"mounts at {tls.path} (deploy/components/gluster-tls)"
    )


def _read_from(log_file: Path, offset: int) -> str:
    try:
        with log_file.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(offset, size - MAX_LOG_READ) if offset <= size else 0)
            return log.read(MAX_LOG_READ).decode("utf-8", "replace")
    except OSError:
        return ""
