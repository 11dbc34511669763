"""What was already reported about a claim, so a refusal gets one Event, not one per update."""

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Final, Generic, TypeVar

#: Claims whose refusal is remembered; beyond this the oldest are forgotten (such a
#: claim gets its Event once more at its next update).
REFUSALS_REMEMBERED: Final = 10_000

V = TypeVar("V", bound=Hashable)


class Refusals(Generic[V]):
    """Per claim UID, the refusal last reported (a reason, a requested size). Thread-safe:
    the workers and the informer thread (a claim deleted) use it at once. A claim's
    entry goes when the claim is deleted, when it is no longer refused, or, the oldest
    first, beyond `limit` entries."""

    def __init__(self, limit: int = REFUSALS_REMEMBERED) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._reported: OrderedDict[str, V] = OrderedDict()

    def first(self, claim_uid: str, refusal: V) -> bool:
        """Whether this refusal is new (and remember it)."""
        with self._lock:
            if self._reported.get(claim_uid) == refusal:
                return False
            self._reported[claim_uid] = refusal
            self._reported.move_to_end(claim_uid)
            while len(self._reported) > self._limit:
                self._reported.popitem(last=False)
            return True

    def forget(self, claim_uid: str) -> None:
        with self._lock:
            self._reported.pop(claim_uid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._reported)
