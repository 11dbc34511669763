"""Unique supplemental GIDs for volumes (pure, thread-safe).

Each volume gets a GID no other volume of ours has, from its class's
`gidMin..gidMax` range; kubelet adds it to the pod's supplemental groups
(`pv.beta.kubernetes.io/gid`) so non-root pods can write the volume. One
allocator holds every GID in use across all classes, so classes with
overlapping ranges never hand out the same GID twice.
"""

import threading

from provisioner.errors import InvalidArgument, ResourceExhausted


class GidRangeExhausted(ResourceExhausted):
    """Every GID of a class's range is in use."""


class GidAllocator:
    """Hands out the next free GID of a range; rebuilt at start from existing volumes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[int] = set()
        #: Per range, where the last search ended: the next allocation starts there,
        #: so a fresh allocation costs O(1) however many GIDs are in use.
        self._cursors: dict[tuple[int, int], int] = {}

    def mark_used(self, gid: int) -> None:
        """Record a GID held by an existing volume (idempotent)."""
        with self._lock:
            self._used.add(gid)

    def release(self, gid: int) -> None:
        """Free the GID of a deleted volume (idempotent)."""
        with self._lock:
            self._used.discard(gid)

    def is_used(self, gid: int) -> bool:
        with self._lock:
            return gid in self._used

    def allocate(self, *, gid_min: int, gid_max: int) -> int:
        """Reserve and return a free GID in `gid_min..gid_max` (inclusive)."""
        if gid_min > gid_max:
            raise InvalidArgument(f"GID range {gid_min}..{gid_max} is empty")
        with self._lock:
            start = min(max(self._cursors.get((gid_min, gid_max), gid_min), gid_min), gid_max)
            gid = self._first_free(start, gid_min, gid_max)
            self._used.add(gid)
            self._cursors[(gid_min, gid_max)] = gid + 1 if gid < gid_max else gid_min
            return gid

    def _first_free(self, start: int, gid_min: int, gid_max: int) -> int:
        # Each step either returns or passes a used GID, so this loop runs at most
        # len(self._used) + 1 times, whatever the size of the range.
        for lo, hi in ((start, gid_max), (gid_min, start - 1)):
            gid = lo
            while gid <= hi:
                if gid not in self._used:
                    return gid
                gid += 1
        raise GidRangeExhausted(
            f"every GID from {gid_min} to {gid_max} is in use by another volume; widen the "
            "StorageClass range with 'gidMin'/'gidMax' or delete unused volumes"
        )
