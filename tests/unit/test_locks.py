"""Per-key locks: one holder per key, bounded waits, entries dropped when free."""

import threading

import pytest

from provisioner.errors import Aborted
from provisioner.locks import KeyedLocks


def keys_kept(locks: KeyedLocks) -> set[object]:
    """The keys the locks keep an entry for (their private bookkeeping)."""
    return set(locks._entries)


def test_different_keys_do_not_block_each_other() -> None:
    locks = KeyedLocks()
    with (
        locks.held("a", timeout=0, busy_message="busy a"),
        locks.held("b", timeout=0, busy_message="busy b"),
    ):
        assert keys_kept(locks) == {"a", "b"}


def test_a_held_key_aborts_a_caller_that_does_not_wait() -> None:
    locks = KeyedLocks()
    with (
        locks.held("v", timeout=0, busy_message="x"),
        pytest.raises(Aborted) as caught,
        locks.held("v", timeout=0, busy_message="busy v"),
    ):
        pass
    assert str(caught.value) == "busy v"


def test_a_waiting_caller_gives_up_after_its_timeout() -> None:
    locks = KeyedLocks()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.held("v", timeout=1, busy_message="x"):
            held.set()
            release.wait(timeout=10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(timeout=10)
        with (
            pytest.raises(Aborted, match="still busy"),
            locks.held("v", timeout=0.05, busy_message="still busy"),
        ):
            pass
    finally:
        release.set()
        holder.join(timeout=10)


def test_a_waiting_caller_gets_the_key_once_it_is_released() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    def first() -> None:
        with locks.held("v", timeout=10, busy_message="x"):
            order.append("first")

    thread = threading.Thread(target=first)
    with locks.held("v", timeout=1, busy_message="x"):
        thread.start()
        order.append("main")
    thread.join(timeout=10)
    assert order == ["main", "first"]


def test_entries_are_dropped_when_nobody_holds_or_waits() -> None:
    locks = KeyedLocks()
    with locks.held("v", timeout=0, busy_message="x"):
        pass
    assert "v" not in keys_kept(locks)
    with pytest.raises(RuntimeError), locks.held("w", timeout=0, busy_message="x"):
        raise RuntimeError("work failed")
    assert "w" not in keys_kept(locks)
