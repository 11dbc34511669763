"""When the Heketi client polls its queue: around the operations' observed duration."""

import pytest

from provisioner.heketi.pacing import POLL_FLOOR, OperationPace


def test_the_first_poll_waits_the_estimate() -> None:
    assert OperationPace(0.5).first_wait() == 0.5


def test_an_estimate_is_never_below_the_floor() -> None:
    assert OperationPace(0.0).first_wait() == POLL_FLOOR


def test_a_pending_first_poll_is_followed_up_after_a_tenth_of_the_estimate() -> None:
    pace = OperationPace(2.0)
    assert pace.next_wait(2.0, after_first=True, factor=1.5, cap=2.0) == pytest.approx(0.2)


def test_later_polls_grow_by_the_factor_up_to_the_cap() -> None:
    pace = OperationPace(2.0)
    assert pace.next_wait(0.2, after_first=False, factor=1.5, cap=2.0) == pytest.approx(0.3)
    assert pace.next_wait(1.8, after_first=False, factor=1.5, cap=2.0) == 2.0


def test_an_operation_slower_than_the_estimate_raises_it() -> None:
    pace = OperationPace(0.1)
    pace.record(0.3, done_at_first_poll=False)
    assert 0.1 < pace.first_wait() < 0.3


def test_an_operation_done_at_the_first_poll_lowers_the_estimate() -> None:
    pace = OperationPace(1.0)
    pace.record(1.01, done_at_first_poll=True)
    assert pace.first_wait() < 1.0


def test_the_estimate_settles_near_a_steady_operation_time() -> None:
    pace, duration = OperationPace(0.1), 0.2
    for _ in range(200):
        first = pace.first_wait()
        done_at_first = first >= duration
        elapsed = first if done_at_first else duration + 0.01
        pace.record(elapsed, done_at_first_poll=done_at_first)
    assert pace.first_wait() == pytest.approx(duration, rel=0.1)
