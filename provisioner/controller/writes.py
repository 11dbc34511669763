"""The reconcilers' writes: made only while leading, and remembered until the watch shows them."""

import threading
import time
from collections.abc import Callable
from typing import Final

from provisioner import errors
from provisioner.controller.informer import Informer
from provisioner.kube.api import Obj

#: How long a reconcile trusts that the watch will deliver our own write before it
#: acts on the (older) cached object anyway.
EXPECTATION_TTL_SECONDS: Final = 30.0


class NotLeading(errors.Aborted):
    """This instance lost (or never had) the lease: it must not act."""


class Expectations:
    """Per key, the resourceVersions our own writes made obsolete.

    A reconcile of a key whose cached copy is one of those (the watch has not yet
    delivered our write) would act on stale data, e.g. provision again a claim we
    just bound; it waits for the watch event instead, which re-queues the key. The
    check needs no ordering of resourceVersions: any other cached version means
    the cache moved on. A TTL bounds the wait should an event never come.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._stale: dict[str, tuple[frozenset[str], float]] = {}

    def wrote(self, key: str, *, obsolete: set[str]) -> None:
        """We changed `key`; versions in `obsolete` no longer describe it."""
        with self._lock:
            self._stale[key] = (frozenset(obsolete), self._clock() + EXPECTATION_TTL_SECONDS)

    def forget(self, key: str) -> None:
        with self._lock:
            self._stale.pop(key, None)

    def waiting(self, key: str, cached_version: str | None) -> float:
        """Seconds to wait for the cache to catch up with our write (0: act now)."""
        with self._lock:
            entry = self._stale.get(key)
            if entry is None:
                return 0.0
            left = entry[1] - self._clock()
            if cached_version not in entry[0] or left <= 0:
                del self._stale[key]
                return 0.0
            return left


class Writes:
    """Guards every write with the lease, and remembers what a claim write made stale."""

    def __init__(
        self,
        *,
        claims: Informer,
        leading: Callable[[], bool],
        expectations: Expectations | None = None,
    ) -> None:
        self._claims = claims
        self._leading = leading
        self.expectations = expectations or Expectations()

    def guard(self) -> None:
        """Raise NotLeading unless this instance may act now (checked before each write)."""
        if not self._leading():
            raise NotLeading("not the leader")

    def claim(self, before: Obj, write: Callable[[], Obj]) -> Obj:
        """Run `write` (a change of claim `before`) and remember that neither `before`
        nor the copy cached before the write describes the claim any more."""
        key = f"{before['metadata']['namespace']}/{before['metadata']['name']}"
        cached = self._claims.get(key)
        obsolete = {str(before["metadata"].get("resourceVersion", ""))}
        if cached is not None:
            obsolete.add(str(cached["metadata"].get("resourceVersion", "")))
        updated = write()
        obsolete.discard(str(updated.get("metadata", {}).get("resourceVersion", "")))
        self.expectations.wrote(key, obsolete=obsolete)
        return updated
