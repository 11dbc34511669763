"""Test controls: the request log and fault injection rules."""

import re
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the server answered it.

    `status` is 0 when the connection was dropped on purpose; for a watch,
    `duration` is the time until the stream ended.
    """

    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    path: str  # URL path without the query
    status: int
    duration: float  # seconds
    time: float  # time.time() when the request arrived
    query: str = ""


@dataclass
class FaultRule:
    verb: str | None
    pattern: re.Pattern[str]
    remaining: int
    status: int
    drop: bool


class Faults:
    """Rules that make the next matching requests fail; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(
        self, *, verb: str | None, path_regex: str, count: int, status: int, drop: bool
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if not drop and not 400 <= status <= 599:
            raise ValueError(f"status {status} is not an error status (400-599)")
        rule = FaultRule(verb, re.compile(path_regex), count, status, drop)
        with self._lock:
            self._rules.append(rule)

    def take(self, verb: str, path: str) -> FaultRule | None:
        """The first rule matching this request, consuming one of its uses."""
        with self._lock:
            for rule in self._rules:
                if (rule.verb is None or rule.verb == verb) and rule.pattern.search(path):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


class Latency:
    """A delay before every non-watch request is answered ("slow answers"); thread-safe.

    Lowering it releases requests already waiting at once, so a test can hold
    requests and let them go without sleeping.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._seconds = 0.0
        self._waiting = 0

    def set(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError("latency must be zero or more seconds")
        with self._changed:
            self._seconds = seconds
            self._changed.notify_all()

    @property
    def waiting(self) -> int:
        """Requests being delayed right now."""
        with self._changed:
            return self._waiting

    def wait(self) -> None:
        """Delay the calling request by the current latency (re-read when it changes)."""
        started = time.monotonic()
        with self._changed:
            self._waiting += 1
            try:
                while (left := started + self._seconds - time.monotonic()) > 0:
                    self._changed.wait(left)
            finally:
                self._waiting -= 1


class RequestLog:
    """Answered requests, oldest first; with a limit only the most recent; thread-safe."""

    def __init__(self, limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=limit)

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
