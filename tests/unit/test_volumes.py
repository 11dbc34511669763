"""The provisioning core against a recording fake Heketi client."""

import threading

import pytest

from provisioner.errors import (
    Aborted,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Unavailable,
    Unsatisfiable,
)
from provisioner.expands import EarlierExpand, ExpansionInProgress
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.errors import (
    HeketiAuthError,
    HeketiNameInUse,
    HeketiNoSpace,
    HeketiNotFound,
    HeketiOutcomeUnknown,
    HeketiUnavailable,
)
from provisioner.heketi.placement import TagRule
from provisioner.heketi.types import Durability, Volume, VolumeCreateRequest
from provisioner.placements import PlacementImpossible
from provisioner.storageclass import ProvisioningParams, parse_parameters
from provisioner.volume_naming import csi_volume_name, heketi_volume_name
from provisioner.volumes import (
    GIB,
    VolumeService,
    heketi_config,
    size_gib,
    volume_context,
)
from tests.unit.fake_heketi import FakeHeketi

HEKETI = HeketiConfig(url="http://heketi:8080", key="k")
PARAMS = parse_parameters(
    {
        "resturl": "http://heketi:8080",
        "clusterid": "0123456789abcdef0123456789abcdef",
        "volumetype": "replicate:2",
        "volumeoptions": "client.ssl on",
        "snapfactor": "5",
    }
)
UID = "6f0b5a5e-3c1f-4d57-9f61-0a3f5c2e9b11"


@pytest.fixture
def heketi() -> FakeHeketi:
    return FakeHeketi()


@pytest.fixture
def service(heketi: FakeHeketi) -> VolumeService:
    return VolumeService(clients=lambda config: heketi)


def ensure(service: VolumeService, name: str = "pvc-a", size: int = 2, gid: int = 2000) -> Volume:
    return service.ensure_volume(heketi=HEKETI, name=name, size_gib=size, params=PARAMS, gid=gid)


# --- sizes, ids and names ---------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [(0, 1), (1, 1), (GIB - 1, 1), (GIB, 1), (GIB + 1, 2), (10 * GIB, 10), (10 * GIB + 1, 11)],
    ids=["zero", "one-byte", "just-under-1GiB", "1GiB", "just-over-1GiB", "10GiB", "over-10GiB"],
)
def test_size_rounds_up_to_whole_gib_and_at_least_one(request_bytes: int, expected: int) -> None:
    assert size_gib(request_bytes) == expected


def test_negative_size_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="requested size -1 bytes is negative"):
        size_gib(-1)


def test_claim_volume_name_is_pvc_dash_uid() -> None:
    assert heketi_volume_name(uid=UID) == f"pvc-{UID}"


def test_claim_volume_name_with_prefix_is_the_in_tree_form() -> None:
    name = heketi_volume_name(uid=UID, namespace="dev", claim="data", prefix="dept")
    assert name == f"dept_dev_data_{UID}"


def test_claim_volume_name_replaces_dots_heketi_refuses() -> None:
    name = heketi_volume_name(uid=UID, namespace="dev", claim="db.data-0", prefix="p")
    assert name == f"p_dev_db-data-0_{UID}"


def test_claim_volume_name_is_shortened_to_127_characters_keeping_the_uid() -> None:
    name = heketi_volume_name(uid=UID, namespace="n" * 63, claim="c" * 253, prefix="p" * 32)
    assert len(name) == 127
    assert name.endswith(f"_{UID}")
    assert name.startswith("p" * 32 + "_nnn")


def test_prefixed_name_without_claim_is_prefix_and_uid() -> None:
    assert heketi_volume_name(uid=UID, prefix="p") == f"p_{UID}"


def test_a_prefix_and_uid_too_long_for_heketi_are_invalid() -> None:
    with pytest.raises(InvalidArgument, match="exceed 127 characters"):
        heketi_volume_name(uid="u" * 100, prefix="p" * 32)


def test_csi_names_longer_than_max_length_are_hashed_within_it() -> None:
    mapped = csi_volume_name("x" * 70, max_length=64)
    assert len(mapped) <= 64 and "_" in mapped
    assert csi_volume_name("x" * 64, max_length=64) == "x" * 64


def test_an_unusable_uid_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="cannot derive a Heketi volume name"):
        heketi_volume_name(uid="a/b")


@pytest.mark.parametrize(
    "name",
    [f"pvc-{UID}", "a", "Vol-1", "x" * 100],
    ids=["external-provisioner", "one-char", "mixed-case", "100-chars"],
)
def test_csi_names_in_heketi_charset_are_kept(name: str) -> None:
    assert csi_volume_name(name) == name


@pytest.mark.parametrize(
    ("name", "readable"),
    [
        ("my volume/ü", "my-volume"),
        ("x" * 101, "x" * 60),
        ("-leading", "leading"),
        ("a_b", "a-b"),
        ("日本", "vol"),
        ("ns.claim", "ns-claim"),
    ],
    ids=["spaces-slash-unicode", "101-chars", "leading-dash", "underscore", "no-ascii", "dot"],
)
def test_other_csi_names_become_readable_part_and_hash(name: str, readable: str) -> None:
    mapped = csi_volume_name(name)
    assert mapped.startswith(readable + "_")
    assert len(mapped) == len(readable) + 21
    assert set(mapped) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def test_csi_name_mapping_is_deterministic() -> None:
    assert csi_volume_name("a b" * 40) == csi_volume_name("a b" * 40)


def test_csi_names_differing_only_in_dropped_characters_do_not_collide() -> None:
    names = ["a b", "a.b", "a/b", "a-b", "a_b", "a__b", "a b ", "A b"]
    assert len({csi_volume_name(n) for n in names}) == len(names)


def test_hashed_names_contain_an_underscore_and_kept_names_never_do() -> None:
    assert "_" in csi_volume_name("a b")
    assert "_" not in csi_volume_name("a-b")


def test_128_character_names_differing_at_the_end_do_not_collide() -> None:
    base = "n." * 63 + "x"
    assert csi_volume_name(base + "1") != csi_volume_name(base + "2")


def test_empty_csi_name_is_invalid() -> None:
    with pytest.raises(InvalidArgument, match="volume name must not be empty"):
        csi_volume_name("")


def test_volume_context_names_servers_primary_first_and_the_gluster_volume(
    heketi: FakeHeketi,
) -> None:
    volume = heketi.add("pvc-a")
    assert volume_context(volume) == {"servers": "10.0.0.1,10.0.0.2", "volume": "pvc-a"}


def test_heketi_config_carries_url_user_key_and_ca() -> None:
    params = parse_parameters(
        {"resturl": "https://h:1", "restuser": "user", "restcafile": "/ca.pem"}
    )
    config = heketi_config(params, key="k")
    assert (config.url, config.user, config.key, config.auth_enabled, config.ca_bundle) == (
        "https://h:1",
        "user",
        "k",
        True,
        "/ca.pem",
    )


def test_heketi_config_drops_the_key_when_auth_is_disabled() -> None:
    params = parse_parameters({"resturl": "http://h:1", "restauthenabled": "false"})
    config = heketi_config(params, key="k")
    assert (config.key, config.auth_enabled) == (None, False)


# --- ensure_volume ------------------------------------------------------------------


def test_ensure_creates_with_every_class_setting(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = ensure(service, size=3, gid=2345)
    assert heketi.calls[-1] == (
        "create_volume",
        VolumeCreateRequest(
            size_gib=3,
            name="pvc-a",
            durability=Durability(type="replicate", replica=2),
            gid=2345,
            clusters=("0123456789abcdef0123456789abcdef",),
            gluster_volume_options=("client.ssl on",),
            snapshot_factor=5.0,
        ),
    )
    assert (volume.name, volume.size_gib, volume.gid) == ("pvc-a", 3, 2345)


def test_ensure_looks_up_by_name_before_creating(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    ensure(service)
    assert [name for name, _ in heketi.calls] == ["find_volume_by_name", "create_volume"]


def test_ensure_returns_the_existing_volume_without_creating(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    existing = heketi.add("pvc-a", size_gib=7)
    assert ensure(service) == existing
    assert heketi.count("create_volume") == 0


def test_ensure_ten_times_makes_one_volume(service: VolumeService, heketi: FakeHeketi) -> None:
    results = {ensure(service).id for _ in range(10)}
    assert len(results) == 1
    assert len(heketi.volumes) == 1


def test_lost_create_answer_is_resolved_by_name(service: VolumeService, heketi: FakeHeketi) -> None:
    heketi.fail_next("create_volume", HeketiOutcomeUnknown("answer lost"), after_effect=True)
    volume = ensure(service)
    assert list(heketi.volumes.values()) == [volume]
    assert heketi.count("find_volume_by_name") == 2


def test_unknown_outcome_with_no_volume_reraises_so_the_caller_retries(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    heketi.fail_next("create_volume", HeketiOutcomeUnknown("queue entry vanished"))
    with pytest.raises(HeketiOutcomeUnknown, match="queue entry vanished"):
        ensure(service)
    assert ensure(service).name == "pvc-a"
    assert len(heketi.volumes) == 1


def test_name_in_use_returns_the_volume_another_creator_made(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    heketi.fail_next("create_volume", HeketiNameInUse("Name pvc-a already in use"))
    heketi.faults["create_volume"][0].after_effect = True
    assert ensure(service).name == "pvc-a"
    assert len(heketi.volumes) == 1


def test_name_still_being_created_is_a_temporary_abort(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    heketi.pending_names.add("pvc-a")
    with pytest.raises(Aborted) as caught:
        ensure(service)
    assert str(caught.value) == (
        "Heketi is still creating volume pvc-a (an earlier attempt); retry later"
    )
    assert heketi.volumes == {}


def test_heketi_unavailable_propagates_as_temporary(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    heketi.fail_next("create_volume", HeketiUnavailable("connection refused"))
    with pytest.raises(Unavailable):
        ensure(service)
    assert heketi.volumes == {}


def test_concurrent_ensures_of_one_name_make_one_volume(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(ensure(service).id)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(set(ids)) == 1 and len(ids) == 8
    assert heketi.count("create_volume") == 1


def ensure_unused(service: VolumeService, name: str = "pvc-a") -> Volume:
    return service.ensure_volume(
        heketi=HEKETI, name=name, size_gib=2, params=PARAMS, gid=2000, unused_name=True
    )


def test_a_name_no_attempt_can_have_used_is_created_without_a_lookup(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = ensure_unused(service)
    assert list(heketi.volumes.values()) == [volume]
    assert heketi.count("find_volume_by_name") == 0


@pytest.mark.parametrize(
    "error",
    [HeketiOutcomeUnknown("answer lost"), HeketiNameInUse("Name pvc-a already in use")],
    ids=["outcome-unknown", "name-in-use"],
)
def test_an_unused_name_whose_create_is_unknown_is_looked_up_not_created_twice(
    service: VolumeService, heketi: FakeHeketi, error: HeketiOutcomeUnknown
) -> None:
    heketi.fail_next("create_volume", error, after_effect=True)
    volume = ensure_unused(service)
    assert list(heketi.volumes.values()) == [volume]
    assert heketi.count("find_volume_by_name") == 1
    assert heketi.count("create_volume") == 1


def test_an_unused_name_whose_lost_create_made_nothing_is_created_again(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    heketi.fail_next("create_volume", HeketiOutcomeUnknown("queue entry vanished"))
    volume = ensure_unused(service)
    assert list(heketi.volumes.values()) == [volume]
    assert heketi.count("create_volume") == 2


def test_a_create_of_an_unused_name_holds_the_names_lock(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    entered, release = threading.Event(), threading.Event()
    create = heketi.create_volume

    def slow_create(request: VolumeCreateRequest) -> Volume:
        entered.set()
        release.wait(30)
        return create(request)

    heketi.create_volume = slow_create  # type: ignore[method-assign]
    first = threading.Thread(target=ensure_unused, args=(service,))
    first.start()
    assert entered.wait(30)
    second: list[Volume] = []
    waiter = threading.Thread(target=lambda: second.append(ensure(service)))
    waiter.start()
    release.set()
    first.join(30)
    waiter.join(30)
    assert len(heketi.volumes) == 1 and second == list(heketi.volumes.values())


def test_each_heketi_config_gets_its_own_client() -> None:
    seen: list[str] = []
    fakes = {"http://a:1": FakeHeketi(), "http://b:1": FakeHeketi()}

    def clients(config: HeketiConfig) -> FakeHeketi:
        seen.append(config.url)
        return fakes[config.url]

    service = VolumeService(clients=clients)
    for url in fakes:
        service.ensure_volume(
            heketi=HeketiConfig(url=url), name="v", size_gib=1, params=PARAMS, gid=0
        )
    assert seen == ["http://a:1", "http://b:1"]
    assert all(len(fake.volumes) == 1 for fake in fakes.values())


# --- reads --------------------------------------------------------------------------


def test_get_volume_of_an_unknown_id_is_not_found(service: VolumeService) -> None:
    with pytest.raises(NotFound, match=f"Heketi has no volume {'f' * 32}"):
        service.get_volume(heketi=HEKETI, volume_id="f" * 32)


def test_get_volume_of_a_malformed_id_is_not_found_without_asking_heketi(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    with pytest.raises(NotFound) as caught:
        service.get_volume(heketi=HEKETI, volume_id="x/../y")
    assert str(caught.value) == "volume id 'x/../y' is not a Heketi volume id"
    assert heketi.calls == []


# --- delete_volume ------------------------------------------------------------------


def test_delete_removes_the_volume(service: VolumeService, heketi: FakeHeketi) -> None:
    volume = heketi.add("a")
    service.delete_volume(heketi=HEKETI, volume_id=volume.id)
    assert heketi.volumes == {}


def test_delete_of_a_missing_volume_succeeds(service: VolumeService, heketi: FakeHeketi) -> None:
    service.delete_volume(heketi=HEKETI, volume_id="e" * 32)
    assert heketi.calls == [("delete_volume", "e" * 32)]


def test_delete_of_a_malformed_id_succeeds_without_asking_heketi(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    service.delete_volume(heketi=HEKETI, volume_id="not-an-id")
    assert heketi.calls == []


def test_delete_with_lost_answer_after_effect_succeeds(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = heketi.add("a")
    heketi.fail_next("delete_volume", HeketiOutcomeUnknown("answer lost"), after_effect=True)
    service.delete_volume(heketi=HEKETI, volume_id=volume.id)
    assert heketi.volumes == {}


def test_delete_with_unknown_outcome_and_volume_still_there_reraises(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = heketi.add("a")
    heketi.fail_next("delete_volume", HeketiOutcomeUnknown("deadline passed"))
    with pytest.raises(HeketiOutcomeUnknown):
        service.delete_volume(heketi=HEKETI, volume_id=volume.id)
    assert volume.id in heketi.volumes


# --- expand_volume ------------------------------------------------------------------


def test_expand_adds_the_missing_gib(service: VolumeService, heketi: FakeHeketi) -> None:
    volume = heketi.add("a", size_gib=2)
    assert service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5).size_gib == 5
    assert ("expand_volume", (volume.id, 3)) in heketi.calls


@pytest.mark.parametrize("target", [1, 2], ids=["smaller", "equal"])
def test_expand_to_a_size_heketi_has_makes_no_call(
    service: VolumeService, heketi: FakeHeketi, target: int
) -> None:
    volume = heketi.add("a", size_gib=2)
    assert service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=target) == volume
    assert heketi.count("expand_volume") == 0


def test_expand_repeated_grows_once(service: VolumeService, heketi: FakeHeketi) -> None:
    volume = heketi.add("a", size_gib=1)
    for _ in range(10):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=4)
    assert heketi.count("expand_volume") == 1
    assert heketi.volumes[volume.id].size_gib == 4


def test_expand_with_lost_answer_after_effect_succeeds(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = heketi.add("a", size_gib=1)
    heketi.fail_next("expand_volume", HeketiOutcomeUnknown("answer lost"), after_effect=True)
    assert service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=3).size_gib == 3


def test_expand_with_unknown_outcome_and_old_size_reraises(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = heketi.add("a", size_gib=1)
    heketi.fail_next("expand_volume", HeketiOutcomeUnknown("deadline passed"))
    with pytest.raises(HeketiOutcomeUnknown):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_expand_still_running_past_the_deadline_is_waited_for_not_repeated(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = heketi.add("a", size_gib=2)
    heketi.stall_next_expand = True  # accepted; still running when the client gives up
    with pytest.raises(HeketiOutcomeUnknown):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    with pytest.raises(ExpansionInProgress, match="still running an earlier expand"):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    heketi.finish_expands()
    assert service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5).size_gib == 5
    assert heketi.count("expand_volume") == 1
    assert heketi.volumes[volume.id].size_gib == 5


def test_an_earlier_expand_that_failed_lets_the_next_one_run(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = heketi.add("a", size_gib=2)
    heketi.stall_next_expand = True
    with pytest.raises(HeketiOutcomeUnknown):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    heketi.running_expands.clear()  # it failed: Heketi rolled it back and forgot it
    assert service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5).size_gib == 5
    assert heketi.count("expand_volume") == 2


def test_an_expand_whose_answer_was_lost_blocks_a_new_one_for_an_operation_deadline(
    heketi: FakeHeketi,
) -> None:
    clock = Clock()
    service = VolumeService(clients=lambda config: heketi, clock=clock)
    volume = heketi.add("a", size_gib=2)
    heketi.stall_next_expand = False  # accepted, but the answer (and its queue path) lost
    with pytest.raises(HeketiOutcomeUnknown):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    clock.now += HEKETI.operation_deadline - 1
    with pytest.raises(ExpansionInProgress, match="lost its answer"):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    heketi.finish_expands()
    clock.now += 1
    assert service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5).size_gib == 5
    assert heketi.count("expand_volume") == 1


def _stalled_expand_of_a_predecessor(heketi: FakeHeketi, volume: Volume) -> str:
    """An expand another VolumeService (a crashed process) sent: Heketi still runs it."""
    predecessor = VolumeService(clients=lambda config: heketi)
    heketi.stall_next_expand = True
    with pytest.raises(HeketiOutcomeUnknown) as caught:
        predecessor.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    assert caught.value.queue_path is not None
    return caught.value.queue_path


def test_a_predecessors_expand_still_running_is_waited_for_not_repeated(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = heketi.add("a", size_gib=2)
    queue = _stalled_expand_of_a_predecessor(heketi, volume)
    earlier = EarlierExpand(queue_path=queue, age_seconds=0.0)
    with pytest.raises(ExpansionInProgress, match="still running an earlier expand"):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5, earlier=earlier)
    heketi.finish_expands()
    grown = service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5, earlier=earlier)
    assert grown.size_gib == 5
    assert heketi.count("expand_volume") == 1


@pytest.mark.parametrize(
    ("age", "blocked"),
    [(0.0, True), (HEKETI.operation_deadline - 1, True), (HEKETI.operation_deadline, False)],
    ids=["just-sent", "within-the-deadline", "deadline-passed"],
)
def test_a_predecessors_expand_without_a_queue_entry_blocks_until_its_deadline_while_heketi_is_busy(
    service: VolumeService, heketi: FakeHeketi, age: float, blocked: bool
) -> None:
    volume = heketi.add("a", size_gib=2)
    heketi.other_operations = 1  # Heketi runs something: it may be that expand
    earlier = EarlierExpand(queue_path=None, age_seconds=age)
    if blocked:
        with pytest.raises(ExpansionInProgress):
            service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5, earlier=earlier)
        assert heketi.count("expand_volume") == 0
    else:
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5, earlier=earlier)
        assert heketi.count("expand_volume") == 1


@pytest.mark.parametrize(
    ("age", "blocked"),
    [(0.0, True), (HEKETI.request_timeout, False)],
    ids=["just-lost", "one-request-timeout-later"],
)
def test_a_predecessors_lost_expand_is_over_once_heketi_has_nothing_pending_after_a_request_timeout(
    service: VolumeService, heketi: FakeHeketi, age: float, blocked: bool
) -> None:
    volume = heketi.add("a", size_gib=2)
    earlier = EarlierExpand(queue_path=None, age_seconds=age)
    if blocked:
        with pytest.raises(ExpansionInProgress):
            service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5, earlier=earlier)
    else:
        grown = service.expand_volume(
            heketi=HEKETI, volume_id=volume.id, size_gib=5, earlier=earlier
        )
        assert grown.size_gib == 5
    assert heketi.count("expand_volume") == (0 if blocked else 1)


def test_an_expand_lost_before_heketi_ran_it_is_sent_again_once_heketi_has_nothing_pending(
    heketi: FakeHeketi,
) -> None:
    """Found by the chaos soak: an expand whose request was lost without effect kept
    the claim from growing for a whole operation deadline (600 s)."""
    clock = Clock()
    service = VolumeService(clients=lambda config: heketi, clock=clock)
    volume = heketi.add("a", size_gib=2)
    heketi.fail_next("expand_volume", HeketiOutcomeUnknown("connection lost before an answer"))
    with pytest.raises(HeketiOutcomeUnknown):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    with pytest.raises(ExpansionInProgress, match="lost its answer"):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    clock.now += HEKETI.request_timeout
    assert service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5).size_gib == 5
    assert heketi.volumes[volume.id].size_gib == 5


def test_a_lost_expand_is_waited_for_while_heketi_cannot_say_what_is_pending(
    heketi: FakeHeketi,
) -> None:
    clock = Clock()
    service = VolumeService(clients=lambda config: heketi, clock=clock)
    volume = heketi.add("a", size_gib=2)
    heketi.fail_next("expand_volume", HeketiOutcomeUnknown("connection lost before an answer"))
    with pytest.raises(HeketiOutcomeUnknown):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    clock.now += HEKETI.request_timeout
    heketi.fail_next("operations_pending", HeketiAuthError("Administrator access required"))
    with pytest.raises(ExpansionInProgress, match="lost its answer"):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    assert heketi.volumes[volume.id].size_gib == 2


def test_a_predecessors_expand_that_already_grew_the_volume_needs_no_wait(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = heketi.add("a", size_gib=5)
    earlier = EarlierExpand(queue_path=None, age_seconds=0.0)
    grown = service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5, earlier=earlier)
    assert grown.size_gib == 5 and heketi.count("expand_volume") == 0


def test_before_send_runs_only_when_an_expand_is_sent(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    volume = heketi.add("a", size_gib=2)
    sent: list[int] = []
    for _ in range(2):
        service.expand_volume(
            heketi=HEKETI,
            volume_id=volume.id,
            size_gib=4,
            before_send=lambda v: sent.append(v.size_gib),
        )
    assert sent == [2]


class _RereadFails(FakeHeketi):
    """Heketi becomes unreachable right after an expand whose answer was lost."""

    reread_failed = False

    def get_volume(self, volume_id: str) -> Volume:
        if self.count("expand_volume") and not self.reread_failed:
            self.reread_failed = True
            raise HeketiUnavailable("connection refused")
        return super().get_volume(volume_id)


def test_an_expand_whose_size_cannot_be_reread_stays_unknown_and_unsettled() -> None:
    heketi = _RereadFails()
    service = VolumeService(clients=lambda config: heketi)
    volume = heketi.add("a", size_gib=2)
    heketi.stall_next_expand = False  # accepted, answer lost
    with pytest.raises(HeketiOutcomeUnknown):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    with pytest.raises(ExpansionInProgress):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    assert heketi.count("expand_volume") == 1


def test_a_lost_expand_that_reached_its_size_does_not_hold_the_next_growth() -> None:
    """Found by the chaos soak: an expand ran but its answer and the re-read were lost;
    the claim was grown again meanwhile and waited 600 s though Heketi showed the
    first expand done."""
    heketi = _RereadFails()
    heketi.other_operations = 1  # Heketi is busy: only the size can tell
    service = VolumeService(clients=lambda config: heketi)
    volume = heketi.add("a", size_gib=2)
    heketi.fail_next("expand_volume", HeketiOutcomeUnknown("answer lost"), after_effect=True)
    with pytest.raises(HeketiOutcomeUnknown):
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=5)
    grown = service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=6)
    assert grown.size_gib == 6
    assert heketi.count("expand_volume") == 2


@pytest.mark.parametrize(
    ("recorded", "blocked"),
    [(5, False), (7, True), (None, True)],
    ids=["reached", "not-yet", "unknown"],
)
def test_a_predecessors_lost_expand_is_over_once_heketi_shows_its_size(
    service: VolumeService, heketi: FakeHeketi, recorded: int | None, blocked: bool
) -> None:
    volume = heketi.add("a", size_gib=5)
    heketi.other_operations = 1
    earlier = EarlierExpand(queue_path=None, age_seconds=0.0, size_gib=recorded)
    if blocked:
        with pytest.raises(ExpansionInProgress):
            service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=6, earlier=earlier)
    else:
        service.expand_volume(heketi=HEKETI, volume_id=volume.id, size_gib=6, earlier=earlier)
    assert heketi.volumes[volume.id].size_gib == (5 if blocked else 6)


def test_expand_of_an_unknown_volume_is_not_found(service: VolumeService) -> None:
    with pytest.raises(NotFound):
        service.expand_volume(heketi=HEKETI, volume_id="d" * 32, size_gib=3)


def test_params_defaults_construct_without_parsing() -> None:
    assert ProvisioningParams(rest_url="http://h:1").durability == Durability(
        type="replicate", replica=3
    )


# --- placements no topology satisfies -----------------------------------------------------


def placed_params(options: str, volumetype: str = "replicate:3") -> ProvisioningParams:
    return parse_parameters(
        {"resturl": "http://heketi:8080", "volumetype": volumetype, "volumeoptions": options}
    )


def ensure_placed(service: VolumeService, params: ProvisioningParams) -> Volume:
    return service.ensure_volume(heketi=HEKETI, name="pvc-p", size_gib=1, params=params, gid=0)


def test_no_space_for_a_tag_fewer_nodes_have_than_a_set_needs_is_unsatisfiable(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    heketi.domains = 2
    heketi.fail_next("create_volume", HeketiNoSpace("Failed to allocate new volume: No space"))
    params = placed_params("user.heketi.device-tag-match disktype=ssd")
    with pytest.raises(PlacementImpossible) as raised:
        ensure_placed(service, params)
    assert str(raised.value) == (
        "Failed to allocate new volume: No space: a brick set needs 3 nodes with devices "
        "tagged disktype=ssd, no cluster has more than 2; tag more devices or add nodes, or "
        "use a class that asks for less"
    )
    assert isinstance(raised.value, Unsatisfiable)
    rule = TagRule("disktype", True, "ssd")
    assert heketi.calls[-1] == ("placement_domains", ((), rule, False))


def test_strict_zones_are_counted_as_zones(service: VolumeService, heketi: FakeHeketi) -> None:
    heketi.domains = 1
    heketi.fail_next("create_volume", HeketiNoSpace("Failed to allocate new volume: No space"))
    params = placed_params("user.heketi.zone-checking strict", volumetype="replicate:2")
    with pytest.raises(PlacementImpossible, match="a brick set needs 2 zones with online devices"):
        ensure_placed(service, params)
    assert heketi.calls[-1] == ("placement_domains", ((), None, True))


@pytest.mark.parametrize(
    ("options", "domains"),
    [
        ("user.heketi.device-tag-match disktype=ssd", 3),  # enough nodes: only full
        ("client.ssl on", 0),  # no placement option: plain "No space"
        ("user.heketi.arbiter true", 0),  # an arbiter restricts no device by itself
    ],
    ids=["enough-nodes", "unconstrained", "arbiter"],
)
def test_other_no_space_answers_stay_resource_exhausted(
    service: VolumeService, heketi: FakeHeketi, options: str, domains: int
) -> None:
    heketi.domains = domains
    heketi.fail_next("create_volume", HeketiNoSpace("Failed to allocate new volume: No space"))
    with pytest.raises(HeketiNoSpace):
        ensure_placed(service, placed_params(options))


# --- clones -------------------------------------------------------------------------

CLONE_PARAMS = parse_parameters({"resturl": "http://heketi:8080", "volumetype": "replicate:3"})


def clone(
    service: VolumeService, source_id: str, *, name: str = "pvc-clone", size: int | None = None
) -> Volume:
    return service.ensure_clone(
        heketi=HEKETI, name=name, source_id=source_id, params=CLONE_PARAMS, size_gib=size
    )


def test_a_clone_is_made_from_its_source_with_the_sources_size_and_gid(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    source = heketi.add("pvc-source", 3, gid=2345)

    made = clone(service, source.id)

    assert (made.name, made.size_gib, made.gid) == ("pvc-clone", 3, 2345)
    assert heketi.count("clone_volume") == 1


def test_a_clone_asked_again_is_found_by_its_name_and_not_cloned_twice(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    source = heketi.add("pvc-source", 2)

    first = clone(service, source.id)
    second = clone(service, source.id)

    assert first.id == second.id
    assert heketi.count("clone_volume") == 1


def test_a_clone_whose_answer_was_lost_is_found_by_its_name(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    source = heketi.add("pvc-source", 2)
    heketi.fail_next("clone_volume", HeketiOutcomeUnknown("answer lost"), after_effect=True)

    made = clone(service, source.id)

    assert made.name == "pvc-clone"
    assert heketi.count("clone_volume") == 1
    assert [v.name for v in heketi.volumes.values()].count("pvc-clone") == 1


def test_a_clone_whose_name_heketi_is_still_cloning_is_aborted_for_a_retry(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    source = heketi.add("pvc-source", 2)
    heketi.pending_names.add("pvc-clone")

    with pytest.raises(Aborted, match="Heketi is still creating volume pvc-clone"):
        clone(service, source.id)


def test_a_clone_larger_than_its_source_is_cloned_then_expanded(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    source = heketi.add("pvc-source", 2)

    made = clone(service, source.id, size=5)

    assert made.size_gib == 5
    assert heketi.calls[-1][0] == "expand_volume"
    assert heketi.volumes[source.id].size_gib == 2


def test_a_clone_found_smaller_than_asked_is_expanded_on_the_retry(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    source = heketi.add("pvc-source", 2)
    clone(service, source.id)

    grown = clone(service, source.id, size=4)

    assert grown.size_gib == 4
    assert heketi.count("clone_volume") == 1


def test_a_clone_smaller_than_its_source_is_out_of_range(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    source = heketi.add("pvc-source", 5)

    with pytest.raises(OutOfRange, match=r"needs at least 5 GiB .* request at least 5Gi"):
        clone(service, source.id, size=2)
    assert heketi.count("clone_volume") == 0


def test_a_clone_of_a_missing_volume_is_not_found(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    with pytest.raises(NotFound):
        clone(service, "ab" * 16)
    assert heketi.count("clone_volume") == 0


def test_a_clone_of_a_volume_deleted_meanwhile_is_not_found(
    service: VolumeService, heketi: FakeHeketi
) -> None:
    source = heketi.add("pvc-source", 1)
    heketi.fail_next("clone_volume", HeketiNotFound("Id not found", status=404))

    with pytest.raises(NotFound, match=f"no volume {source.id} to clone"):
        clone(service, source.id)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        pytest.param(
            {"volumetype": "disperse:4:2"},
            "is replicate:3, the StorageClass asks for disperse:4:2",
            id="other-volumetype",
        ),
        pytest.param(
            {"clusterid": "f" * 32},
            "not one of the StorageClass's 'clusterid'",
            id="other-cluster",
        ),
    ],
)
def test_a_clone_the_class_cannot_describe_is_an_invalid_argument(
    service: VolumeService, heketi: FakeHeketi, parameters: dict[str, str], message: str
) -> None:
    source = heketi.add("pvc-source", 1)
    params = parse_parameters({"resturl": "http://heketi:8080", **parameters})

    with pytest.raises(InvalidArgument, match=message):
        service.ensure_clone(
            heketi=HEKETI, name="c", source_id=source.id, params=params, size_gib=None
        )
    assert heketi.count("clone_volume") == 0
