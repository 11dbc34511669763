"""The id → name map of one Heketi: bounded, forgets what is gone, shares listings."""

import threading

import pytest

from provisioner.heketi.name_cache import (
    VolumeIdentity,
    VolumeNameMap,
    read_all,
)
from provisioner.heketi.types import Durability, Volume


def volume(volume_id: str, name: str, gid: int = 0) -> Volume:
    return Volume(
        id=volume_id, name=name, size_gib=1, cluster="c", durability=Durability(type="none"),
        gid=gid, hosts=("h",), device=f"h:{name}", backup_volfile_servers=(), options=(),
    )  # fmt: skip


def test_an_install_keeps_only_listed_ids() -> None:
    names = VolumeNameMap()
    names.remember("a", VolumeIdentity("va", 0))
    names.install(["b"], {"b": VolumeIdentity("vb", 7)}, listed_at=1.0)
    assert names.snapshot() == {"b": VolumeIdentity("vb", 7)}


def test_the_map_never_holds_more_than_its_bound() -> None:
    names = VolumeNameMap(max_entries=2)
    fetched = {i: VolumeIdentity(f"v{i}", 0) for i in "abc"}
    names.install("abc", fetched, listed_at=1.0)
    names.remember("d", VolumeIdentity("vd", 0))
    assert len(names) == 2 and names.unknown("abcd") == ["c", "d"]


def test_forget_drops_an_id() -> None:
    names = VolumeNameMap()
    names.remember("a", VolumeIdentity("va", 0))
    names.forget("a")
    assert names.unknown(["a"]) == ["a"]


def test_a_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        VolumeNameMap(max_entries=-1)


def test_refresh_reads_only_unseen_ids_and_answers_beyond_the_bound() -> None:
    names = VolumeNameMap(max_entries=1)
    read: list[list[str]] = []

    def reader(ids: object) -> list[Volume]:
        read.append(list(ids))  # type: ignore[call-overload]
        return [volume(i, f"v{i}") for i in read[-1]]

    identities, _ = names.refresh(list_ids=lambda: ["a", "b"], read=reader)
    assert set(identities) == {"a", "b"}
    names.refresh(list_ids=lambda: ["a", "b"], read=reader)
    assert read == [["a", "b"], ["b"]]  # "b" did not fit: read again


def test_concurrent_refreshes_share_a_listing_started_after_they_asked() -> None:
    names = VolumeNameMap()
    listings = 0
    inside = threading.Event()
    release = threading.Event()

    def list_ids() -> list[str]:
        nonlocal listings
        listings += 1
        if listings == 1:
            inside.set()
            release.wait(10)
        return []

    first = threading.Thread(target=names.refresh, kwargs={"list_ids": list_ids, "read": list})
    first.start()
    inside.wait(10)
    waiting = [
        threading.Thread(target=names.refresh, kwargs={"list_ids": list_ids, "read": list})
        for _ in range(5)
    ]
    for thread in waiting:
        thread.start()
    release.set()
    for thread in [first, *waiting]:
        thread.join(10)
    # the first, then one shared by the five that asked while it ran (a thread that
    # started late on a loaded machine may need one more): never one per caller
    assert 2 <= listings < 1 + len(waiting)


def test_read_all_keeps_order_and_propagates_the_first_error() -> None:
    assert read_all(["a", "b", "c"], str.upper, workers=2) == ["A", "B", "C"]

    def failing(item: str) -> str:
        raise RuntimeError(item)

    with pytest.raises(RuntimeError):
        read_all(["a", "b"], failing, workers=2)
