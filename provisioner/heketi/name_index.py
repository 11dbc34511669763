"""A short-lived name → volume index built from one `GET /topology` listing.

Heketi has no lookup by name: finding one volume means listing every volume.
At thousands of claims, listing before each create costs O(volumes) per claim.
The index lets lookups within `ttl` seconds of a listing reuse it:

* a hit is confirmed with `GET /volumes/{id}` by the client (one small request);
* a miss is answered from the listing. That is safe because Heketi refuses a
  second volume with the same name ("already in use"); the client then
  invalidates the index, so the caller's next lookup lists afresh;
* changes this process makes (creates, deletes) are applied on top of any
  listing that started before them, so the index never forgets our own work.
"""

import threading
import time
from dataclasses import dataclass

from provisioner.heketi.types import Volume


@dataclass(frozen=True)
class Lookup:
    """`fresh` False: the caller must list afresh. Else `volume` is the answer."""

    fresh: bool
    volume: Volume | None = None


class NameIndex:
    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self.refresh_lock = threading.Lock()  # one listing at a time per client
        self._by_name: dict[str, Volume] = {}
        self._listed_at: float | None = None
        self._invalidated_at = 0.0
        #: Our own changes: name → (when, volume or None for deleted).
        self._recent: dict[str, tuple[float, Volume | None]] = {}

    def lookup(self, name: str) -> Lookup:
        with self._lock:
            if not self._fresh():
                return Lookup(fresh=False)
            return Lookup(fresh=True, volume=self._by_name.get(name))

    def _fresh(self) -> bool:
        listed = self._listed_at
        return (
            self._ttl > 0
            and listed is not None
            and listed >= self._invalidated_at
            and time.monotonic() - listed < self._ttl
        )

    def replace(self, volumes: list[Volume], *, listed_at: float) -> None:
        """Install a listing whose request started at `listed_at` (monotonic); a
        listing older than the installed one (a slower concurrent request) is dropped."""
        with self._lock:
            if self._listed_at is not None and listed_at < self._listed_at:
                return
            by_name = {v.name: v for v in volumes}
            for name, (when, volume) in list(self._recent.items()):
                if when < listed_at:
                    del self._recent[name]  # the listing already reflects it
                elif volume is None:
                    by_name.pop(name, None)
                else:
                    by_name[name] = volume
            self._by_name = by_name
            self._listed_at = listed_at

    def put(self, volume: Volume) -> None:
        with self._lock:
            self._by_name[volume.name] = volume
            self._recent[volume.name] = (time.monotonic(), volume)

    def drop(self, volume_id: str) -> None:
        with self._lock:
            for name, volume in list(self._by_name.items()):
                if volume.id == volume_id:
                    del self._by_name[name]
                    self._recent[name] = (time.monotonic(), None)

    def invalidate(self) -> None:
        with self._lock:
            self._invalidated_at = time.monotonic()
