"""A de-duplicating work queue with per-key exponential backoff.

Semantics follow client-go's rate-limited queue, which every Kubernetes controller
author already knows:

- a key is queued at most once, however often it is added while it waits;
- a key is handed to at most one worker at a time: adding a key that is being
  processed marks it dirty, and it is queued again when the worker calls `done`;
- `add_rate_limited` re-adds a key after an exponentially growing, jittered delay
  (`forget` resets the key's failure count after a success);
- `shutdown` stops handing out keys; workers finish the key they hold (drain).
"""

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: First retry delay: long enough to let a transient API/Heketi hiccup pass.
DEFAULT_BACKOFF_BASE_SECONDS = 1.0
#: Longest retry delay: a broken claim is retried at least every 5 minutes.
DEFAULT_BACKOFF_CAP_SECONDS = 300.0
#: ±20 % jitter spreads retries of many claims that failed together.
DEFAULT_BACKOFF_JITTER = 0.2


@dataclass(frozen=True)
class BackoffPolicy:
    """Per-key exponential backoff: base * 2**failures, capped, with ±jitter."""

    base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS
    cap_seconds: float = DEFAULT_BACKOFF_CAP_SECONDS
    jitter: float = DEFAULT_BACKOFF_JITTER

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError("backoff needs 0 < base_seconds <= cap_seconds")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")

    def delay(self, failures: int, *, rng: Callable[[], float] = random.random) -> float:
        """Delay before retry number `failures` (0 for the first retry)."""
        raw = self.base_seconds * (2.0 ** min(failures, 60))
        capped = min(raw, self.cap_seconds)
        spread = capped * self.jitter * (2.0 * rng() - 1.0)
        return max(0.0, capped + spread)


class WorkQueue(Generic[K]):
    """Thread-safe queue of keys; see the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        backoff: BackoffPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._backoff = backoff or BackoffPolicy()
        self._clock = clock
        self._rng = rng
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}
        self._waiting: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._shutting_down = False

    def add(self, key: K) -> None:
        """Queue `key` now (no-op when already queued)."""
        with self._cond:
            self._add_locked(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` once `delay` seconds have passed (the earliest request wins)."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutting_down:
                return
            ready = self._clock() + delay
            current = self._waiting.get(key)
            if current is not None and current <= ready:
                return
            self._waiting[key] = ready
            heapq.heappush(self._heap, (ready, next(self._seq), key))
            self._cond.notify()

    def add_rate_limited(self, key: K) -> float:
        """Queue `key` after its backoff delay; returns the delay chosen."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = self._backoff.delay(failures, rng=self._rng)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset `key`'s failure count (call after it was handled successfully)."""
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        """How many times in a row `key` was re-added with backoff."""
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to work on, or None on shutdown or when `timeout` passes."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutting_down:
                    return None
                self._promote_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                wait = self._wait_seconds_locked(deadline)
                if wait is not None and wait <= 0:
                    return None
                self._cond.wait(wait)

    def done(self, key: K) -> None:
        """Mark `key` as no longer processed; re-queue it if it was added meanwhile."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty and not self._shutting_down:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        """Stop handing out keys; blocked `get` calls return None."""
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    def __len__(self) -> int:
        """Keys ready to be handed out now (the queue depth)."""
        with self._cond:
            return len(self._queue)

    def waiting(self) -> int:
        """Keys waiting for their backoff delay to pass."""
        with self._cond:
            return len(self._waiting)

    def _add_locked(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._cond.notify()

    def _promote_due_locked(self) -> None:
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            ready, _, key = heapq.heappop(self._heap)
            if self._waiting.get(key) != ready:
                continue  # superseded by an earlier request
            del self._waiting[key]
            self._add_locked(key)

    def _wait_seconds_locked(self, deadline: float | None) -> float | None:
        now = self._clock()
        candidates = []
        if self._heap:
            candidates.append(self._heap[0][0] - now)
        if deadline is not None:
            candidates.append(deadline - now)
        if not candidates:
            return None
        return max(0.0, min(candidates))
