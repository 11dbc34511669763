"""The name index never forgets this process's own changes and honours invalidation."""

import time

from provisioner.heketi.name_index import NameIndex
from provisioner.heketi.types import Durability, Volume


def volume(name: str, volume_id: str) -> Volume:
    return Volume(
        id=volume_id,
        name=name,
        size_gib=1,
        cluster="c",
        durability=Durability("none"),
        gid=0,
        hosts=("h",),
        device=f"h:{name}",
        backup_volfile_servers=(),
        options=(),
    )


def test_nothing_is_fresh_before_the_first_listing() -> None:
    assert not NameIndex(60).lookup("a").fresh


def test_listing_answers_hits_and_misses() -> None:
    index = NameIndex(60)
    index.replace([volume("a", "1")], listed_at=time.monotonic())
    assert index.lookup("a").volume == volume("a", "1")
    assert index.lookup("b").fresh and index.lookup("b").volume is None


def test_own_create_after_the_listing_started_survives_the_listing() -> None:
    index = NameIndex(60)
    started = time.monotonic()
    index.put(volume("new", "2"))
    index.replace([], listed_at=started)
    assert index.lookup("new").volume == volume("new", "2")


def test_own_delete_after_the_listing_started_survives_the_listing() -> None:
    index = NameIndex(60)
    index.replace([volume("old", "3")], listed_at=time.monotonic())
    started = time.monotonic()
    index.drop("3")
    index.replace([volume("old", "3")], listed_at=started)
    assert index.lookup("old").volume is None


def test_invalidation_needs_a_listing_that_started_afterwards() -> None:
    index = NameIndex(60)
    before = time.monotonic()
    index.invalidate()
    index.replace([], listed_at=before)
    assert not index.lookup("a").fresh
    index.replace([], listed_at=time.monotonic())
    assert index.lookup("a").fresh


def test_zero_ttl_is_never_fresh() -> None:
    index = NameIndex(0)
    index.replace([], listed_at=time.monotonic())
    assert not index.lookup("a").fresh


def test_a_slower_older_listing_does_not_replace_a_newer_one() -> None:
    index = NameIndex(60)
    older = time.monotonic()
    index.replace([volume("a", "1")], listed_at=older + 1)
    index.replace([], listed_at=older)
    assert index.lookup("a").volume == volume("a", "1")
