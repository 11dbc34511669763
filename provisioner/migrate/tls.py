"""In-tree PVs whose Gluster volume encrypts its I/O (TLS): never migrated silently.

The in-tree plugin mounted on the host, where admins had put the client's certificate,
key and CA (Debian: /usr/lib/ssl/glusterfs.*; Red Hat: /etc/ssl/). Our node plugin runs
in a container and has them only when given `--gluster-tls-dir` (the
deploy/components/gluster-tls component). A volume with `client.ssl on` or
`server.ssl on` — in its in-tree class's `volumeoptions`, or in the options Heketi
lists for it (`glustervolumeoptions`) — is therefore blocked unless migrate is told,
with `--gluster-tls-ready`, that the node plugin has them.
"""

from collections.abc import Iterable
from typing import Final

#: Volume options that turn TLS on for a volume's I/O path (gluster volume set help).
TLS_OPTIONS: Final = frozenset({"client.ssl", "server.ssl"})
#: How Gluster's boolean options say "on".
_ON: Final = frozenset({"on", "yes", "true", "enable", "1"})
#: What an admin does about a TLS volume before migrating it.
_HOW: Final = (
    "the node plugin mounts it only with the client's certificate, key and CA "
    "(--gluster-tls-dir; deploy/components/gluster-tls, docs/tls.md)"
)


def tls_evidence(options: Iterable[str], *, where: str) -> list[str]:
    """The options that turn TLS on, e.g. `client.ssl on (StorageClass gold volumeoptions)`."""
    found: list[str] = []
    for option in options:
        key, _, value = option.strip().partition(" ")
        if key.lower() in TLS_OPTIONS and value.strip().lower() in _ON:
            found.append(f"{key} {value.strip()} ({where})")
    return found


def tls_findings(volume: str, evidence: list[str], *, ready: bool) -> tuple[list[str], list[str]]:
    """(blockers, notes) for a volume with `evidence` of TLS; `ready`: --gluster-tls-ready."""
    if not evidence:
        return [], []
    said = "; ".join(dict.fromkeys(evidence))
    if ready:
        return [], [
            f"uses TLS ({said}): --gluster-tls-ready says the node plugin has the "
            "client's certificate, key and CA"
        ]
    return [
        f"Gluster volume {volume} uses TLS ({said}): {_HOW}; give it them, then run with "
        "--gluster-tls-ready"
    ], []
