"""Unique supplemental GIDs for volumes: the one GID component of every command.

Each volume gets a GID no other volume of ours has, from its class's
`gidMin..gidMax` range; kubelet adds it to the pod's supplemental groups
(`pv.beta.kubernetes.io/gid`) so non-root pods can write the volume.

A `GidPool` knows who holds which GID: a GID is free only while nothing holds it.
The callers name the holders. The PVC controller has one pool for every class it
serves (classes with overlapping ranges never hand out one GID twice), held by PVs,
claims being provisioned and retained volumes (`controller/gid_reservations.py`).
The CSI Controller service has one pool per Heketi URL (`GidPools`), held by the
volumes that Heketi lists and by those it is creating. Several holders may hold one
GID (an in-tree PV and ours on the same Heketi), so one of them letting go does not
free it for the others.
"""

import threading
from collections.abc import Mapping

from provisioner.errors import InvalidArgument, ResourceExhausted

#: Who holds a GID: a kind ("pv", "claim", ...) and a name unique within it.
Holder = tuple[str, str]


class GidRangeExhausted(ResourceExhausted):
    """Every GID of a class's range is in use."""


class GidPool:
    """The GIDs in use, counted by holder, and where each range's next search starts.

    Thread-safe. An allocation starts where the last one of its range ended (its
    cursor), so it costs one probe however many GIDs are held, until the range wraps
    and passes the GIDs still held on the way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[Holder, int] = {}
        #: Per GID in use, how many holders hold it (never 0: a freed GID is absent).
        self._counts: dict[int, int] = {}
        self._cursors: dict[tuple[int, int], int] = {}

    def hold(self, holder: Holder, gid: int, *, replace: bool = True) -> int:
        """`holder` holds `gid` (instead of what it held; with `replace=False` a GID it
        already holds is kept). Returns the GID it holds now."""
        with self._lock:
            current = self._holders.get(holder)
            if current is not None and (current == gid or not replace):
                return current
            self._unset(holder)
            self._set(holder, gid)
            return gid

    def drop(self, holder: Holder) -> None:
        """`holder` holds nothing any more (idempotent)."""
        with self._lock:
            self._unset(holder)

    def hold_exactly(self, kind: str, gids: Mapping[str, int]) -> None:
        """The holders of `kind` are exactly `gids` (name → GID): others of that kind let
        go, those named hold their GID."""
        with self._lock:
            gone = [h for h in self._holders if h[0] == kind and h[1] not in gids]
            for holder in gone:
                self._unset(holder)
            for name, gid in gids.items():
                if self._holders.get((kind, name)) != gid:
                    self._unset((kind, name))
                    self._set((kind, name), gid)

    def allocate(self, holder: Holder, *, gid_min: int, gid_max: int) -> int:
        """The GID `holder` holds, else a free one of `gid_min..gid_max` (inclusive),
        now held by it."""
        if gid_min > gid_max:
            raise InvalidArgument(f"GID range {gid_min}..{gid_max} is empty")
        with self._lock:
            current = self._holders.get(holder)
            if current is not None:
                return current
            start = min(max(self._cursors.get((gid_min, gid_max), gid_min), gid_min), gid_max)
            gid = self._first_free(start, gid_min, gid_max)
            self._cursors[(gid_min, gid_max)] = gid + 1 if gid < gid_max else gid_min
            self._set(holder, gid)
            return gid

    def _first_free(self, start: int, gid_min: int, gid_max: int) -> int:
        # Each step either returns or passes a held GID, so this loop runs at most
        # len(self._counts) + 1 times, whatever the size of the range.
        for lo, hi in ((start, gid_max), (gid_min, start - 1)):
            gid = lo
            while gid <= hi:
                if gid not in self._counts:
                    return gid
                gid += 1
        raise GidRangeExhausted(
            f"every GID from {gid_min} to {gid_max} is in use by another volume; widen the "
            "StorageClass range with 'gidMin'/'gidMax' or delete unused volumes"
        )

    def _set(self, holder: Holder, gid: int) -> None:
        self._holders[holder] = gid
        self._counts[gid] = self._counts.get(gid, 0) + 1

    def _unset(self, holder: Holder) -> None:
        gid = self._holders.pop(holder, None)
        if gid is None:
            return
        left = self._counts[gid] - 1
        if left:
            self._counts[gid] = left
        else:
            del self._counts[gid]


class GidPools:
    """One `GidPool` per Heketi URL, made on first use (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, GidPool] = {}

    def pool(self, url: str) -> GidPool:
        with self._lock:
            return self._pools.setdefault(url, GidPool())
