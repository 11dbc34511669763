"""The work queue: de-duplication, one worker per key, backoff with jitter, shutdown."""

import threading

import pytest

from provisioner.controller.workqueue import BackoffPolicy, WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_added_twice_while_waiting_is_handed_out_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert [queue.get(0), queue.get(0), queue.get(0)] == ["a", "b", None]


def test_a_key_added_while_processed_is_requeued_only_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"
    queue.add("a")
    assert queue.get(0) is None  # not handed to a second worker meanwhile
    queue.done("a")
    assert queue.get(0) == "a"


def test_done_without_a_new_add_does_not_requeue() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.done(queue.get(0) or "")
    assert queue.get(0) is None


def test_rate_limited_keys_wait_for_their_growing_backoff() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(
        backoff=BackoffPolicy(base_seconds=1, cap_seconds=300, jitter=0), clock=clock
    )
    delays = [queue.add_rate_limited("a") for _ in range(3)]
    assert delays == [1.0, 2.0, 4.0]
    assert queue.get(0) is None
    clock.now += 1.0
    assert queue.get(0) == "a"


def test_forget_resets_the_backoff_of_a_key() -> None:
    queue: WorkQueue[str] = WorkQueue(backoff=BackoffPolicy(jitter=0))
    queue.add_rate_limited("a")
    queue.add_rate_limited("a")
    queue.forget("a")
    assert queue.failures("a") == 0
    assert queue.add_rate_limited("a") == 1.0


@pytest.mark.parametrize(
    ("failures", "rng", "expected"),
    [
        (0, 0.5, 1.0),
        (0, 0.0, 0.8),
        (0, 1.0, 1.2),
        (3, 0.5, 8.0),
        (20, 0.5, 300.0),
        (20, 1.0, 360.0),
    ],
    ids=["first", "low-jitter", "high-jitter", "fourth", "capped", "capped-with-jitter"],
)
def test_backoff_is_exponential_capped_and_jittered(
    failures: int, rng: float, expected: float
) -> None:
    policy = BackoffPolicy(base_seconds=1, cap_seconds=300, jitter=0.2)
    assert policy.delay(failures, rng=lambda: rng) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("base", "cap", "jitter"),
    [(0, 1, 0.1), (2, 1, 0.1), (1, 2, 1.0)],
    ids=["zero-base", "cap-below-base", "jitter-too-large"],
)
def test_invalid_backoff_policies_are_refused(base: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        BackoffPolicy(base_seconds=base, cap_seconds=cap, jitter=jitter)


def test_an_earlier_delayed_add_wins_over_a_later_one() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 10)
    queue.add_after("a", 2)
    clock.now += 2
    assert queue.get(0) == "a"
    queue.done("a")
    clock.now += 10
    assert queue.get(0) is None  # the superseded entry does not fire again


def test_shutdown_wakes_blocked_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    results: list[str | None] = []
    worker = threading.Thread(target=lambda: results.append(queue.get()))
    worker.start()
    queue.shutdown()
    worker.join(5)
    assert results == [None]
    queue.add("a")
    assert queue.get(0) is None


def test_depth_counts_ready_keys_and_waiting_counts_delayed_ones() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add_after("b", 60)
    assert (len(queue), queue.waiting()) == (1, 1)
