"""What the expansion reconciler remembers about refused expansions."""

from provisioner.controller.expansion import Refusals


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
