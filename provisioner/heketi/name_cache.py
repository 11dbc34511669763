"""The names (and GIDs) of one Heketi's volumes by id: finding a volume by name on
Heketi v10.4.1's own routes.

Heketi has no lookup by name, and `GET /volumes` lists ids only (apps/glusterfs
app_volume.go `VolumeList`); a name is in `GET /volumes/{id}` (`VolumeInfo`).
No route changes a volume's name or GID once created, so an id → (name, gid)
map stays true for as long as the id exists. A lookup lists the ids (one
request), reads the volumes of ids it has not seen (in parallel), and forgets ids
no longer listed: a restarted process pays once for every volume, later lookups
one `GET /volumes` plus the volumes created since.

Owned by whoever runs the process (one per Heketi URL, shared by that URL's
clients), bounded by `max_entries`: ids beyond it are read again on every
lookup, so lookups stay correct, only slower.
"""

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, TypeVar

from provisioner.heketi.types import Volume

#: Ids remembered per Heketi. One entry is ~300 bytes: 100,000 (ten times the
#: largest Heketi we benchmark) stay under ~30 MB.
DEFAULT_MAX_ENTRIES: Final = 100_000


@dataclass(frozen=True)
class VolumeIdentity:
    """What never changes about a Heketi volume."""

    name: str
    gid: int


class VolumeNameMap:
    """id → `VolumeIdentity` of one Heketi's volumes. Thread-safe."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must not be negative")
        self._max = max_entries
        self._lock = threading.Lock()
        #: One listing at a time: concurrent lookups share the next one (`listed_since`).
        self.refresh_lock = threading.Lock()
        self._known: dict[str, VolumeIdentity] = {}
        self._listed_at: float | None = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._known)

    def listed_since(self, moment: float) -> bool:
        """Whether a listing that started at or after `moment` (monotonic) is installed."""
        with self._lock:
            return self._listed_at is not None and self._listed_at >= moment

    def unknown(self, ids: Iterable[str]) -> list[str]:
        """The ids of `ids` this map cannot name."""
        with self._lock:
            return [i for i in ids if i not in self._known]

    def install(
        self, ids: Iterable[str], fetched: Mapping[str, VolumeIdentity], *, listed_at: float
    ) -> None:
        """Apply a listing that started at `listed_at`: keep only listed ids (others
        are gone), add `fetched` up to the bound. A volume created or deleted while
        the listing ran may be dropped or kept wrongly: that costs one more read
        later (the client confirms every hit with `GET /volumes/{id}`), never a
        wrong answer."""
        listed = set(ids)
        with self._lock:
            for volume_id in [i for i in self._known if i not in listed]:
                del self._known[volume_id]
            for volume_id, identity in fetched.items():
                if volume_id in listed and len(self._known) < self._max:
                    self._known[volume_id] = identity
            self._listed_at = max(listed_at, self._listed_at or listed_at)

    def refresh(
        self,
        *,
        list_ids: Callable[[], list[str]],
        read: Callable[[Sequence[str]], list[Volume]],
    ) -> tuple[dict[str, VolumeIdentity], dict[str, Volume]]:
        """Every listed id's identity, after listing (`list_ids`) and reading the
        volumes of unseen ids (`read`); and the volumes read. Concurrent callers share
        one listing: a caller that finds a listing started after it asked uses that
        one (and has read nothing)."""
        asked = time.monotonic()
        fetched: dict[str, Volume] = {}
        with self.refresh_lock:
            if not self.listed_since(asked):
                started = time.monotonic()
                ids = list_ids()
                fetched = {v.id: v for v in read(self.unknown(ids))}
                known = {i: identity(v) for i, v in fetched.items()}
                self.install(ids, known, listed_at=started)
        identities = self.snapshot()
        identities.update((i, identity(v)) for i, v in fetched.items())  # beyond the bound
        return identities, fetched

    def snapshot(self) -> dict[str, VolumeIdentity]:
        with self._lock:
            return dict(self._known)

    def remember(self, volume_id: str, identity: VolumeIdentity) -> None:
        """A volume this process just created (or read)."""
        with self._lock:
            if volume_id in self._known or len(self._known) < self._max:
                self._known[volume_id] = identity

    def forget(self, volume_id: str) -> None:
        """A volume that is gone (deleted, or answered 404)."""
        with self._lock:
            self._known.pop(volume_id, None)

    def clear(self) -> None:
        with self._lock:
            self._known.clear()
            self._listed_at = None


T = TypeVar("T")


def read_all(ids: Sequence[str], read: Callable[[str], T], *, workers: int) -> list[T]:
    """`read` of each id, in order, at most `workers` at a time; the first error
    raised cancels the reads not yet started and propagates."""
    if len(ids) <= 1:
        return [read(i) for i in ids]
    with ThreadPoolExecutor(
        max_workers=min(workers, len(ids)), thread_name_prefix="heketi-read"
    ) as pool:
        futures = [pool.submit(read, i) for i in ids]
        try:
            return [f.result() for f in futures]
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def identity(volume: Volume) -> VolumeIdentity:
    return VolumeIdentity(name=volume.name, gid=volume.gid)
