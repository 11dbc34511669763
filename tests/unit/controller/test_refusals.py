"""One Event per refused claim: the bounded, thread-safe memory of what was reported."""

import threading

from provisioner.controller.events import Refusals


def test_many_threads_reporting_one_refusal_report_it_once() -> None:
    refusals: Refusals[str] = Refusals()
    start = threading.Barrier(8)
    firsts: list[bool] = []

    def report() -> None:
        start.wait(30)
        firsts.extend(refusals.first(f"uid-{i % 50}", "class gone") for i in range(500))

    threads = [threading.Thread(target=report) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert firsts.count(True) == 50
    assert len(refusals) == 50


def test_a_refusal_with_another_reason_is_new() -> None:
    refusals: Refusals[str] = Refusals()
    assert refusals.first("uid-1", "selector set")
    assert not refusals.first("uid-1", "selector set")
    assert refusals.first("uid-1", "dataSource set")


def test_a_claim_forgotten_gets_its_refusal_reported_again() -> None:
    refusals: Refusals[str] = Refusals()
    refusals.first("uid-1", "selector set")
    refusals.forget("uid-1")
    assert refusals.first("uid-1", "selector set")
