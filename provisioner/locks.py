"""Per-key locks (one per volume name or id), created on demand and dropped when free."""

import threading
from collections.abc import Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager

from provisioner.errors import Aborted


class KeyedLocks:
    """A mutex per key. Entries live only while someone holds or waits for them."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._entries: dict[Hashable, tuple[threading.Lock, int]] = {}

    def _enter(self, key: Hashable) -> threading.Lock:
        with self._mutex:
            lock, users = self._entries.get(key, (threading.Lock(), 0))
            self._entries[key] = (lock, users + 1)
            return lock

    def _leave(self, key: Hashable) -> None:
        with self._mutex:
            lock, users = self._entries[key]
            if users == 1:
                del self._entries[key]
            else:
                self._entries[key] = (lock, users - 1)

    @contextmanager
    def held(self, key: Hashable, *, timeout: float, busy_message: str) -> Iterator[None]:
        """Hold `key`'s lock; wait at most `timeout` s, then raise `Aborted(busy_message)`.

        `timeout=0` does not wait: a concurrent holder means `Aborted` at once.
        """
        lock = self._enter(key)
        try:
            acquired = lock.acquire(timeout=timeout) if timeout > 0 else lock.acquire(False)
            if not acquired:
                raise Aborted(busy_message)
            try:
                yield
            finally:
                lock.release()
        finally:
            self._leave(key)


class VolumeLocks:
    """One CSI operation per volume at a time: a second one gets `Aborted` at once (the
    CSI rule; the CO retries). Shared by the Node and Controller servicers of one process.
    """

    def __init__(self) -> None:
        self._locks = KeyedLocks()

    def hold(self, volume_id: str) -> AbstractContextManager[None]:
        """Hold the lock for `volume_id` for the `with` block, or raise Aborted."""
        return self._locks.held(
            volume_id,
            timeout=0,
            busy_message=f"an operation on volume {volume_id} is already in progress; retry later",
        )
