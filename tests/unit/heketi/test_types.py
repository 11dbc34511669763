"""Request bodies and volume parsing follow Heketi's JSON field names."""

import pytest

from provisioner.heketi import Durability, Volume, VolumeCreateRequest
from provisioner.heketi.types import is_heketi_id


@pytest.mark.parametrize(
    ("durability", "body"),
    [
        (Durability("replicate", replica=3), {"type": "replicate", "replicate": {"replica": 3}}),
        (
            Durability("disperse", data=4, redundancy=2),
            {"type": "disperse", "disperse": {"data": 4, "redundancy": 2}},
        ),
        (Durability("none"), {"type": "none"}),
    ],
    ids=["replicate", "disperse", "none"],
)
def test_durability_round_trips(durability: Durability, body: dict[str, object]) -> None:
    assert durability.to_json() == body
    assert Durability.from_json(body) == durability


def test_missing_durability_type_means_none() -> None:
    assert Durability.from_json({}) == Durability("none")


def test_unknown_durability_type_is_refused() -> None:
    with pytest.raises(ValueError, match="mirror"):
        Durability.from_json({"type": "mirror"})


def test_create_body_has_only_the_fields_given() -> None:
    minimal = VolumeCreateRequest(size_gib=1, name="pvc-a", durability=Durability("none"))
    assert minimal.to_json() == {"size": 1, "name": "pvc-a", "durability": {"type": "none"}}


def test_create_body_carries_every_option() -> None:
    full = VolumeCreateRequest(
        size_gib=3,
        name="pvc-b",
        durability=Durability("replicate", replica=3),
        gid=2000,
        clusters=("c1",),
        gluster_volume_options=("performance.rda on",),
        snapshot_factor=1.5,
    )
    assert full.to_json() == {
        "size": 3,
        "name": "pvc-b",
        "durability": {"type": "replicate", "replicate": {"replica": 3}},
        "gid": 2000,
        "clusters": ["c1"],
        "glustervolumeoptions": ["performance.rda on"],
        "snapshot": {"enable": True, "factor": 1.5},
    }


def test_volume_parses_heketi_volume_info() -> None:
    info = {
        "size": 2,
        "name": "pvc-c",
        "id": "a" * 32,
        "cluster": "c" * 32,
        "gid": 2001,
        "durability": {"type": "replicate", "replicate": {"replica": 3}, "disperse": {}},
        "glustervolumeoptions": ["x y"],
        "snapshot": {"enable": False, "factor": 1},
        "mount": {
            "glusterfs": {
                "hosts": ["10.0.0.1", "10.0.0.2"],
                "device": "10.0.0.1:pvc-c",
                "options": {"backup-volfile-servers": "10.0.0.2"},
            }
        },
        "bricks": [],
        "blockinfo": {},
    }
    assert Volume.from_json(info) == Volume(
        id="a" * 32,
        name="pvc-c",
        size_gib=2,
        cluster="c" * 32,
        durability=Durability("replicate", replica=3),
        gid=2001,
        hosts=("10.0.0.1", "10.0.0.2"),
        device="10.0.0.1:pvc-c",
        backup_volfile_servers=("10.0.0.2",),
        options=("x y",),
    )


def test_volume_without_backup_servers_has_none() -> None:
    info = {
        "size": 1,
        "name": "v",
        "id": "b" * 32,
        "mount": {
            "glusterfs": {
                "hosts": ["h"],
                "device": "h:v",
                "options": {"backup-volfile-servers": ""},
            }
        },
    }
    volume = Volume.from_json(info)
    assert (volume.backup_volfile_servers, volume.gid, volume.durability) == (
        (),
        0,
        Durability("none"),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0123456789abcdef" * 2, True),
        ("ABCDEF" + "0" * 26, False),
        ("0" * 31, False),
        ("0" * 33, False),
        ("../" + "0" * 29, False),
        ("", False),
    ],
    ids=["lower-hex", "upper-hex-is-not-how-heketi-writes-ids", "short", "long", "path", "empty"],
)
def test_heketi_ids_are_32_lowercase_hex_digits(value: str, expected: bool) -> None:
    assert is_heketi_id(value) is expected
