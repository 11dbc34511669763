"""What the expansion reconciler remembers: refused expansions, expands in flight."""

from typing import Any

import pytest

from provisioner.controller.events import Refusals
from provisioner.controller.expansion import earlier_expand, in_flight_record
from provisioner.core import annotations


def test_a_refusal_is_new_once_per_claim_and_size() -> None:
    refusals = Refusals()
    assert refusals.first("uid-1", 3 << 30)
    assert not refusals.first("uid-1", 3 << 30)
    assert refusals.first("uid-1", 4 << 30)
    assert len(refusals) == 1


def test_a_forgotten_claim_is_reported_again() -> None:
    refusals = Refusals()
    refusals.first("uid-1", 3 << 30)
    refusals.forget("uid-1")
    refusals.forget("uid-unknown")
    assert len(refusals) == 0
    assert refusals.first("uid-1", 3 << 30)


def test_the_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    refusals = Refusals(limit=2)
    for claim in ("uid-1", "uid-2", "uid-3"):
        refusals.first(claim, 3 << 30)
    assert len(refusals) == 2
    assert refusals.first("uid-1", 3 << 30)  # forgotten: reported again
    assert not refusals.first("uid-3", 3 << 30)


def _pv(record: str | None) -> dict[str, Any]:
    ann = {annotations.ANN_EXPAND_IN_FLIGHT: record} if record is not None else {}
    return {"metadata": {"name": "pvc-1", "annotations": ann}}


def test_a_predecessors_record_becomes_an_earlier_expand() -> None:
    record = in_flight_record(size=5, by="old-pod_1234", queue_path="/queue/abc")
    earlier = earlier_expand(_pv(record), identity="new-pod_5678")
    assert earlier is not None and earlier.queue_path == "/queue/abc"
    assert earlier.size_gib == 5
    assert 0 <= earlier.age_seconds < 60


@pytest.mark.parametrize(
    "record",
    [None, in_flight_record(size=5, by="me"), "not json", '{"by": "x"}', "[]"],
    ids=["none", "own-record", "not-json", "no-time", "not-an-object"],
)
def test_no_earlier_expand_from_a_missing_own_or_unreadable_record(record: str | None) -> None:
    assert earlier_expand(_pv(record), identity="me") is None
