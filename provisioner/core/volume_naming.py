"""Heketi volume names: the deterministic name of a claim, and of a CSI volume name.

These names are fixed once chosen (README "Names that stay fixed"): a volume is
found again by its name after a retry or a restart, so changing a rule strands
every volume made under the old one.
"""

import hashlib
import re
from typing import Final

from provisioner import errors
from provisioner.core import annotations

#: Longest Heketi volume name we make. Gluster allows more, but the name recurs in
#: file names under /var/lib/glusterd (volfiles, 255-byte file-name limit), and the
#: node plugin accepts Gluster volume names of at most 127 characters.
HEKETI_NAME_MAX: Final = 127
#: CSI names up to this length made only of [A-Za-z0-9-] become the Heketi name unchanged.
CSI_NAME_KEPT_MAX: Final = 100
_KEEPABLE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
#: Readable part kept of any other CSI name (the hash makes it unique).
_READABLE_MAX: Final = 60
#: Hex digits of SHA-256 appended (80 bits: a collision needs ~10^12 names).
_HASH_CHARS: Final = 20
_NOT_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9]+")
_UID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def csi_volume_name(name: str, *, max_length: int = CSI_NAME_KEPT_MAX) -> str:
    """A CSI volume name (any characters) → a unique name in Heketi's `[A-Za-z0-9_-]`.

    Names of up to `max_length` letters, digits and '-' starting with a letter or
    digit (e.g. external-provisioner's `pvc-<uid>`) are kept as they are. Any other
    name becomes `<readable part>_<20 hex digits of its SHA-256>`, at most
    `max_length` characters: these always contain one '_', kept names never do, so
    the two forms cannot collide.
    """
    if not name:
        raise errors.InvalidArgument("volume name must not be empty")
    if max_length < _HASH_CHARS + 2:
        raise ValueError(f"max_length {max_length} leaves no room for the hash")
    if len(name) <= max_length and _KEEPABLE.fullmatch(name):
        return name
    room = min(_READABLE_MAX, max_length - _HASH_CHARS - 1)
    readable = _NOT_NAME_CHARS.sub("-", name).strip("-")[:room].rstrip("-")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{readable or 'vol'}_{digest}"


def heketi_volume_name(
    *, uid: str, namespace: str | None = None, claim: str | None = None, prefix: str | None = None
) -> str:
    """The deterministic Heketi volume name of a claim: `pvc-<uid>`, or with a
    class `volumenameprefix` `<prefix>_<namespace>_<claim>_<uid>` (the in-tree form;
    characters Heketi refuses become '-', namespace and claim are shortened to keep
    the name within 127 characters — the UID alone keeps it unique)."""
    if not _UID.fullmatch(uid):
        raise errors.InvalidArgument(
            f"cannot derive a Heketi volume name from UID {uid!r}: letters, digits, '-' and "
            "'_' only"
        )
    if prefix is None:
        return f"{annotations.HEKETI_NAME_PREFIX}{uid}"
    if len(prefix) + len(uid) + 1 > HEKETI_NAME_MAX:
        raise errors.InvalidArgument(
            f"volume name prefix {prefix!r} and UID {uid!r} exceed {HEKETI_NAME_MAX} characters"
        )
    if namespace is None or claim is None:
        return f"{prefix}_{uid}"
    ns, pvc = (_NOT_NAME_CHARS.sub("-", part) for part in (namespace, claim))
    budget = HEKETI_NAME_MAX - len(prefix) - len(uid) - 3
    if len(ns) + len(pvc) > budget:
        ns = ns[: max(budget // 2, budget - len(pvc))]
        pvc = pvc[: max(budget - len(ns), 0)]
    return f"{prefix}_{ns}_{pvc}_{uid}"
