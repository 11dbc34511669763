"""Pure parts of `glusterfs-provisioner audit`: what counts as orphaned, missing, stuck."""

import argparse
import uuid
from pathlib import Path

import pytest

from provisioner import errors
from provisioner.audit import command, findings
from provisioner.core import annotations
from provisioner.heketi.types import Durability, Volume

DRIVER = annotations.DRIVER_NAME
URL = "http://heketi.test:8080"
NOW = 1_800_000_000.0


def _volume(name: str, *, vid: str | None = None, gid: int = 0) -> Volume:
    return Volume(
        id=vid or uuid.uuid4().hex,
        name=name,
        size_gib=1,
        cluster="c" * 32,
        durability=Durability(type="none"),
        gid=gid,
        hosts=("10.0.0.1",),
        device=f"10.0.0.1:{name}",
        backup_volfile_servers=(),
        options=(),
    )


def _pv(
    name: str,
    handle: str,
    *,
    gid: int | None = None,
    driver: str = DRIVER,
    url: str | None = URL,
    volume: str | None = None,
) -> dict[str, object]:
    ann: dict[str, str] = {}
    if url is not None:
        ann[annotations.ANN_HEKETI_URL] = url
    if gid is not None:
        ann[annotations.ANN_GID] = str(gid)
    attrs = {annotations.CTX_VOLUME: volume} if volume else {}
    return {
        "metadata": {"name": name, "annotations": ann},
        "spec": {
            "csi": {"driver": driver, "volumeHandle": handle, "volumeAttributes": attrs},
            "claimRef": {"namespace": "ns", "name": "claim"},
        },
        "status": {"phase": "Bound"},
    }


def _pvc(
    name: str,
    uid: str,
    *,
    created: str = "2020-01-01T00:00:00Z",
    phase: str = "Pending",
    cls: str = "glusterfs",
) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": uid, "creationTimestamp": created},
        "spec": {"storageClassName": cls},
        "status": {"phase": phase},
    }


def _state(*, pvs=(), pvcs=(), classes=(), events=()) -> findings.ClusterState:  # type: ignore[no-untyped-def]
    default_class = {
        "metadata": {"name": "glusterfs"},
        "provisioner": DRIVER,
        "parameters": {"resturl": URL},
    }
    return findings.ClusterState(
        pvs=tuple(pvs),
        pvcs=tuple(pvcs),
        storage_classes=tuple(classes) or (default_class,),
        events=tuple(events),
    )


SETTINGS = findings.AuditSettings(driver_name=DRIVER, heketi_url=URL, pending_after_seconds=300)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "pvc-0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            id="pvc-uid",
        ),
        pytest.param(
            "gold_team-a_data-db_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            id="class-prefix",
        ),
        pytest.param("vol_0123456789abcdef0123456789abcdef", None, id="heketi-default-name"),
        pytest.param("pvc-not-a-uid", None, id="pvc-without-uuid"),
        pytest.param(
            "silver_ns_claim_0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", None, id="unknown-prefix"
        ),
        pytest.param("xpvc-0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b", None, id="prefix-not-at-start"),
    ],
)
def test_claim_uid_is_read_only_from_names_we_create(name: str, expected: str | None) -> None:
    assert findings.claim_uid_of(name, {"gold"}) == expected


def test_volume_with_our_name_and_no_pv_or_claim_is_an_orphan() -> None:
    orphan = _volume(f"pvc-{uuid.uuid4()}")
    report = findings.build_report([orphan], _state(), SETTINGS, now=NOW)
    assert [o.id for o in report.orphaned_volumes] == [orphan.id]


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("handle", id="pv-volume-handle-is-the-heketi-id"),
        pytest.param("attribute", id="pv-volume-attribute-names-it"),
        pytest.param("in-tree", id="in-tree-glusterfs-pv-path-names-it"),
        pytest.param("other-driver", id="pv-of-another-driver-names-it"),
    ],
)
def test_volume_referenced_by_any_pv_is_not_an_orphan(reference: str) -> None:
    vol = _volume(f"pvc-{uuid.uuid4()}")
    pv: dict[str, object]
    if reference == "handle":
        pv = _pv("pv1", vol.id)
    elif reference == "attribute":
        pv = _pv("pv1", "something-else", volume=vol.name)
    elif reference == "in-tree":
        pv = {"metadata": {"name": "pv1"}, "spec": {"glusterfs": {"path": vol.name}}}
    else:
        pv = _pv("pv1", vol.id, driver="other.csi.example.com")
    report = findings.build_report([vol], _state(pvs=[pv]), SETTINGS, now=NOW)
    assert report.orphaned_volumes == ()


def test_volume_whose_claim_still_exists_is_provisioning_not_an_orphan() -> None:
    uid = str(uuid.uuid4())
    vol = _volume(f"pvc-{uid}")
    report = findings.build_report([vol], _state(pvcs=[_pvc("c", uid)]), SETTINGS, now=NOW)
    assert report.orphaned_volumes == ()


def test_volume_not_named_by_us_is_never_an_orphan() -> None:
    vol = _volume("vol_0123456789abcdef0123456789abcdef")
    report = findings.build_report([vol], _state(), SETTINGS, now=NOW)
    assert report.orphaned_volumes == ()


def test_class_volume_name_prefix_makes_prefixed_volumes_ours() -> None:
    sc = {
        "metadata": {"name": "gold"},
        "provisioner": DRIVER,
        "parameters": {"resturl": URL, "VolumeNamePrefix": "gold"},
    }
    vol = _volume(f"gold_ns_claim_{uuid.uuid4()}")
    report = findings.build_report([vol], _state(classes=[sc]), SETTINGS, now=NOW)
    assert [o.name for o in report.orphaned_volumes] == [vol.name]


def test_pv_whose_heketi_volume_is_gone_is_reported_missing() -> None:
    report = findings.build_report([], _state(pvs=[_pv("pvc-1", "deadbeef")]), SETTINGS, now=NOW)
    assert [(m.pv, m.volume_handle, m.claim) for m in report.missing_volumes] == [
        ("pvc-1", "deadbeef", "ns/claim")
    ]


@pytest.mark.parametrize(
    "pv",
    [
        pytest.param(_pv("p", "x", driver="other.example.com"), id="other-driver"),
        pytest.param(_pv("p", "x", url="http://another-heketi:8080"), id="other-heketi"),
    ],
)
def test_pv_not_served_by_the_audited_heketi_is_not_reported_missing(
    pv: dict[str, object],
) -> None:
    report = findings.build_report([], _state(pvs=[pv]), SETTINGS, now=NOW)
    assert report.missing_volumes == ()


def test_claim_pending_past_threshold_is_reported_with_its_latest_event() -> None:
    uid = str(uuid.uuid4())
    events = [
        {
            "involvedObject": {"uid": uid},
            "reason": "Provisioning",
            "message": "old",
            "lastTimestamp": "2020-01-01T00:01:00Z",
        },
        {
            "involvedObject": {"uid": uid},
            "reason": "ProvisioningFailed",
            "message": "no space",
            "lastTimestamp": "2020-01-01T00:05:00Z",
        },
    ]
    state = _state(pvcs=[_pvc("data", uid)], events=events)
    (claim,) = findings.build_report([], state, SETTINGS, now=NOW).pending_claims
    assert (claim.claim, claim.reason, claim.message) == (
        "ns/data",
        "ProvisioningFailed",
        "no space",
    )


@pytest.mark.parametrize(
    "pvc",
    [
        pytest.param(_pvc("young", "u1", created="2027-01-15T07:59:00Z"), id="young"),
        pytest.param(_pvc("bound", "u2", phase="Bound"), id="bound"),
        pytest.param(_pvc("foreign", "u3", cls="other"), id="other-class"),
    ],
)
def test_claims_young_bound_or_of_other_classes_are_not_reported(
    pvc: dict[str, object],
) -> None:
    report = findings.build_report([], _state(pvcs=[pvc]), SETTINGS, now=NOW)
    assert report.pending_claims == ()


def test_pv_and_its_own_volume_sharing_a_gid_is_no_collision() -> None:
    vol = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    state = _state(pvs=[_pv("pv1", vol.id, gid=2001)])
    assert findings.build_report([vol], state, SETTINGS, now=NOW).gid_collisions == ()


def test_two_volumes_with_one_gid_collide() -> None:
    a = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    b = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    state = _state(pvs=[_pv("pv-a", a.id, gid=2001), _pv("pv-b", b.id, gid=2001)])
    (collision,) = findings.build_report([a, b], state, SETTINGS, now=NOW).gid_collisions
    assert collision.gid == 2001
    assert set(collision.holders) == {"pv:pv-a", "pv:pv-b", f"heketi:{a.name}", f"heketi:{b.name}"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("24h", 86400), ("7d", 604800), ("1h30m", 5400), ("1.5h", 5400)],
)
def test_durations_accept_units_and_combinations(text: str, seconds: float) -> None:
    assert command.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "5x", "-5m", "1h 30m"])
def test_bad_durations_are_rejected_with_an_example(text: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=r"e\.g\. 90s"):
        command.parse_duration(text)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    command.register(sub)
    return parser.parse_args(["audit", *argv])


def test_a_refused_heketi_url_never_shows_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEKETI_URL", raising=False)
    with pytest.raises(errors.InvalidArgument, match="http:// or https://") as refused:
        command.config_from_args(_args("--heketi-url", "ftp://admin:s3cret@heketi:8080"))
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param([], "--heketi-url", id="no-url"),
        pytest.param(["--heketi-url", "heketi:8080"], "http:// or https://", id="no-scheme"),
        pytest.param(
            ["--heketi-url", URL, "--delete-orphans"], "needs --older-than", id="delete-without-age"
        ),
        pytest.param(
            ["--heketi-url", URL, "--delete-orphans", "--older-than", "1m"],
            "too short",
            id="age-too-short",
        ),
        pytest.param(
            ["--heketi-url", URL, "--older-than", "1h"], "only applies", id="age-without-delete"
        ),
        pytest.param(
            ["--heketi-url", URL, "--heketi-secret", "just-a-name"],
            "NAMESPACE/NAME",
            id="secret-without-namespace",
        ),
        pytest.param(
            ["--heketi-url", URL, "--heketi-secret", "a/b", "--heketi-key-file", "/k"],
            "not both",
            id="two-key-sources",
        ),
    ],
)
def test_bad_flags_are_refused_with_an_exact_message(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEKETI_URL", raising=False)
    with pytest.raises(errors.InvalidArgument, match=message):
        command.config_from_args(_args(*argv))


class _NoKube:
    """The audit's Kubernetes reader when no Secret is named: never asked."""

    def secret_key(self, namespace: str, name: str) -> str:
        raise AssertionError("no Secret was named")


def _key_from(
    tmp_path: Path, file_text: str | None, env_key: str | None, monkeypatch: pytest.MonkeyPatch
) -> str | None:
    monkeypatch.delenv("HEKETI_URL", raising=False)
    argv = ["--heketi-url", URL]
    if file_text is not None:
        (tmp_path / "key").write_text(file_text)
        argv += ["--heketi-key-file", str(tmp_path / "key")]
    environ = {"HEKETI_KEY": env_key} if env_key is not None else {}
    config = command.config_from_args(_args(*argv))
    return command.heketi_key(config, _NoKube(), environ)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("file_text", "env_key", "expected"),
    [("s3cret\n", None, "s3cret"), (None, "from-env", "from-env"), (None, None, None)],
    ids=["file", "environment", "neither"],
)
def test_the_audit_reads_the_key_from_one_source(
    file_text: str | None,
    env_key: str | None,
    expected: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _key_from(tmp_path, file_text, env_key, monkeypatch) == expected


@pytest.mark.parametrize(
    ("file_text", "env_key", "message"),
    [
        ("", None, "--heketi-key-file .* is empty"),
        (" \n", None, "--heketi-key-file .* is empty"),
        ("s3cret", "from-env", "set either --heketi-key-file or HEKETI_KEY, not both"),
    ],
    ids=["empty-file", "blank-file", "file-and-environment"],
)
def test_the_audit_refuses_an_empty_key_file_and_two_key_sources(
    file_text: str,
    env_key: str | None,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(errors.InvalidArgument, match=message) as refused:
        _key_from(tmp_path, file_text, env_key, monkeypatch)
    assert "s3cret" not in str(refused.value) and "from-env" not in str(refused.value)


def _clone_pv(name: str, handle: str, source: str, *, gid: int) -> dict[str, object]:
    pv = _pv(name, handle, gid=gid)
    pv["spec"]["csi"]["volumeAttributes"][annotations.CTX_CLONE_OF] = source  # type: ignore[index]
    return pv


def test_a_clone_and_its_source_sharing_a_gid_is_no_collision() -> None:
    source = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    clone = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    clone_of_clone = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    state = _state(
        pvs=[
            _pv("pv-src", source.id, gid=2001),
            _clone_pv("pv-clone", clone.id, source.id, gid=2001),
            _clone_pv("pv-clone-2", clone_of_clone.id, clone.id, gid=2001),
        ]
    )
    report = findings.build_report([source, clone, clone_of_clone], state, SETTINGS, now=NOW)
    assert report.gid_collisions == ()


def test_a_clone_family_still_collides_with_an_unrelated_volume() -> None:
    source = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    clone = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    other = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    state = _state(
        pvs=[
            _pv("pv-src", source.id, gid=2001),
            _clone_pv("pv-clone", clone.id, source.id, gid=2001),
            _pv("pv-other", other.id, gid=2001),
        ]
    )
    (collision,) = findings.build_report(
        [source, clone, other], state, SETTINGS, now=NOW
    ).gid_collisions
    assert "pv:pv-other" in collision.holders and "pv:pv-clone" in collision.holders


def test_a_clone_whose_pv_is_gone_is_reported_with_its_source() -> None:
    source = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    clone = _volume(f"pvc-{uuid.uuid4()}", gid=2001)
    state = _state(pvs=[_pv("pv-src", source.id, gid=2001)])
    (collision,) = findings.build_report([source, clone], state, SETTINGS, now=NOW).gid_collisions
    assert f"heketi:{clone.name}" in collision.holders
