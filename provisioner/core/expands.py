"""Expands whose outcome was lost, and when a new expand of the volume may be sent.

Heketi's expand adds GiB and accepts a second expand while the first runs, so after an
expand ended in HeketiOutcomeUnknown no new one is sent until the first is known to be
over: Heketi shows its target size; its queue entry says it ended; or, when even its
acceptance is unknown, Heketi has no operation pending at all (asked once the lost
request has surely arrived or never will) or one operation deadline has passed.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from provisioner import errors
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.errors import (
    HeketiAuthError,
    HeketiBusy,
    HeketiError,
    HeketiOutcomeUnknown,
    HeketiUnavailable,
)
from provisioner.heketi.types import Volume
from provisioner.log import get_logger

log = get_logger("expands")


class ExpansionInProgress(errors.Aborted):
    """An earlier expand of this volume, whose outcome we lost, may still be running."""


@dataclass(frozen=True)
class EarlierExpand:
    """An expand of a volume that another process (a predecessor of the caller) sent
    and whose end it did not see, as the caller recorded it durably."""

    #: Heketi's queue entry of that expand, when it was known.
    queue_path: str | None
    #: Seconds since it was sent (or since its outcome was lost).
    age_seconds: float
    #: The size it was to grow the volume to, when recorded.
    size_gib: int | None = None


@dataclass(frozen=True)
class _Unsettled:
    """An expand that ended in HeketiOutcomeUnknown with the size not yet grown."""

    #: Heketi's queue entry (the expand was accepted), or None (its answer was lost).
    queue_path: str | None
    #: Without a queue entry: no new expand before this time (one operation deadline),
    #: unless Heketi has no operation pending at all after `quiet_from`.
    not_before: float
    #: When a request that was lost in transit has surely reached Heketi or never will
    #: (one request timeout after the loss).
    quiet_from: float
    #: The size it grows the volume to (None: not known): once Heketi shows it, it ended.
    target_gib: int | None


class ExpandProbe(Protocol):
    """What is asked of Heketi about an earlier expand (part of `HeketiClient`)."""

    def poll_expand(self, queue_path: str) -> Volume | None: ...
    def operations_pending(self) -> int: ...


class UnsettledExpands:
    """Per (Heketi URL, volume id), the expand whose outcome this process lost."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._unsettled: dict[tuple[str, str], _Unsettled] = {}

    def forget(self, heketi: HeketiConfig, volume_id: str) -> None:
        with self._lock:
            self._unsettled.pop((heketi.url, volume_id), None)

    def remember(
        self, heketi: HeketiConfig, volume_id: str, err: HeketiOutcomeUnknown, *, target: int
    ) -> None:
        now = self._clock()
        unsettled = _Unsettled(
            err.queue_path, now + heketi.operation_deadline, now + heketi.request_timeout, target
        )
        with self._lock:
            self._unsettled[(heketi.url, volume_id)] = unsettled

    def adopt(self, heketi: HeketiConfig, volume_id: str, earlier: EarlierExpand) -> None:
        """Remember a predecessor's unsettled expand (unless this process knows better)."""
        age = max(0.0, earlier.age_seconds)
        now = self._clock()
        unsettled = _Unsettled(
            earlier.queue_path,
            now + max(0.0, heketi.operation_deadline - age),
            now + max(0.0, heketi.request_timeout - age),
            earlier.size_gib,
        )
        with self._lock:
            self._unsettled.setdefault((heketi.url, volume_id), unsettled)

    def settle(
        self, client: ExpandProbe, heketi: HeketiConfig, volume_id: str, *, size_now: int
    ) -> bool:
        """Return once no earlier expand can still be running (True if there was one: the
        size may have changed since it was read); else raise ExpansionInProgress. An
        expand whose target size Heketi already shows has ended (Heketi shows a new size
        only then)."""
        key = (heketi.url, volume_id)
        with self._lock:
            unsettled = self._unsettled.get(key)
        if unsettled is None:
            return False
        reached = unsettled.target_gib is not None and size_now >= unsettled.target_gib
        if not reached:
            self._raise_while_running(client, heketi, volume_id, unsettled)
        with self._lock:
            self._unsettled.pop(key, None)
        return True

    def _raise_while_running(
        self, client: ExpandProbe, heketi: HeketiConfig, volume_id: str, unsettled: _Unsettled
    ) -> None:
        if unsettled.queue_path is None:
            if self._clock() < unsettled.not_before and not self._idle(client, unsettled):
                raise ExpansionInProgress(
                    f"an earlier expand of volume {volume_id} lost its answer and may still be "
                    "running in Heketi; not expanding again before one operation deadline "
                    f"({heketi.operation_deadline:g} s) has passed"
                )
        elif not _ended(client, unsettled.queue_path):
            raise ExpansionInProgress(
                f"Heketi is still running an earlier expand of volume {volume_id}; "
                "retrying once it has finished"
            )

    def _idle(self, client: ExpandProbe, unsettled: _Unsettled) -> bool:
        """Whether an expand whose acceptance is unknown can no longer change the volume:
        Heketi has no operation pending at all, asked after the lost request would surely
        have arrived. Then it either grew the volume (the size shows it) or never will."""
        if self._clock() < unsettled.quiet_from:
            return False
        try:
            pending = client.operations_pending()
        except HeketiError as err:  # cannot tell: keep waiting for the deadline
            log.info("could not read Heketi's pending operations", error=str(err))
            return False
        return pending == 0


def _ended(client: ExpandProbe, queue_path: str) -> bool:
    """Whether the expand at `queue_path` ended (either way); errors that leave it
    unknown (Heketi unreachable, busy, refusing our key) propagate."""
    try:
        return client.poll_expand(queue_path) is not None
    except (HeketiUnavailable, HeketiBusy, HeketiAuthError):
        raise
    except HeketiError as err:  # failed (rolled back), or forgotten: the size is final
        log.info("earlier expand ended", queue_path=queue_path, outcome=str(err))
        return True
