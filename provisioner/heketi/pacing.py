"""When to poll Heketi's queue: around the time its operations have been taking.

A fixed schedule either polls a fast Heketi too late (each operation then holds
one of the `max_inflight` slots longer than Heketi needs it) or polls a slow one
too often. Instead, each Heketi URL keeps an estimate of how long its
operations take (one `OperationPace`, shared by its clients through
`registry.HeketiClients`): the first poll comes at the estimate, later ones at
a tenth of it (at least POLL_FLOOR apart), growing by the configured factor.
"""

import threading
from typing import Final

#: Never poll one operation more often than this (seconds).
POLL_FLOOR: Final = 0.02
#: After the first poll found the operation pending, wait this share of the estimate.
FOLLOW_UP_SHARE: Final = 0.1
#: Done at the first poll: the estimate may be too high; shrink it by this factor.
DECAY: Final = 0.98
#: Weight of the latest duration when the first poll came too early.
LEARN_RATE: Final = 0.5


class OperationPace:
    """The estimated duration of one Heketi's async operations. Thread-safe."""

    def __init__(self, initial: float) -> None:
        self._estimate = max(POLL_FLOOR, initial)
        self._lock = threading.Lock()

    def first_wait(self) -> float:
        return self._estimate

    def next_wait(self, previous: float, *, after_first: bool, factor: float, cap: float) -> float:
        if after_first:
            return min(cap, max(POLL_FLOOR, FOLLOW_UP_SHARE * self._estimate))
        return min(cap, max(POLL_FLOOR, previous * factor))

    def record(self, elapsed: float, *, done_at_first_poll: bool) -> None:
        """Learn from one finished operation (`elapsed` since Heketi accepted it)."""
        with self._lock:
            if done_at_first_poll:
                self._estimate = max(POLL_FLOOR, DECAY * min(self._estimate, elapsed))
            else:
                self._estimate += LEARN_RATE * (elapsed - self._estimate)
