"""Arbiter volumes, zone checking and device tags: the same requests, the same answers
from the Heketi test server and from a real Heketi v10.4.1.

The topology is the one `../shared/peers/heketi-mock-topology.json` gives the real
Heketi: three nodes in zones 1, 2 and 3, two 500 GiB devices each. The tests tag its
devices through Heketi's own route (`POST /devices/{id}/tags`): in zones 1 and 2 the
first device is `disktype=ssd` and the second `hdd`, both devices of zone 3 are `hdd`
— so two nodes (and zones) have an SSD. Tags are restored afterwards.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from provisioner.heketi import Durability, HeketiClient, VolumeCreateRequest
from provisioner.heketi.errors import HeketiError
from tests.contract.conftest import Target, remove_our_volumes, targets, unique
from tests.integration.test_servers.heketi_http import call as raw_call
from tests.integration.test_servers.heketi_http import token

REPLICA_2 = Durability(type="replicate", replica=2)
REPLICA_3 = Durability(type="replicate", replica=3)
GIB_KIB = 1024 * 1024
ARBITER = "user.heketi.arbiter true"
SSD = "user.heketi.device-tag-match disktype=ssd"
STRICT = "user.heketi.zone-checking strict"
NO_SPACE = "Failed to allocate new volume: No space"
#: heketi-mock-topology.json, as the test server loads it.
MOCK_TOPOLOGY = {
    "clusters": [
        {
            "nodes": [
                {
                    "node": {
                        "hostnames": {"manage": [f"127.0.0.{i}"], "storage": [f"127.0.0.{i}"]},
                        "zone": i,
                    },
                    "devices": [{"name": "/dev/mock-a"}, {"name": "/dev/mock-b"}],
                }
                for i in (1, 2, 3)
            ]
        }
    ]
}


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    node: str
    zone: int
    tags: dict[str, str]


@dataclass(frozen=True)
class Topology:
    target: Target
    cluster: str
    devices: dict[str, Device]
    storage_hosts: list[str]  # in the cluster's node order

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        bearer = f"bearer {token(method, path, key=self.target.key)}"
        return raw_call(self.target.url, method, path, body=body, authorization=bearer)


@pytest.fixture(scope="module", params=["testbed", "real"])
def placement_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield from targets(request.param, topology=MOCK_TOPOLOGY, device_gib=500)


def _read_topology(target: Target) -> Topology:
    bare = Topology(target, "", {}, [])
    (cluster,) = bare.call("GET", "/clusters").json()["clusters"]
    node_ids = bare.call("GET", f"/clusters/{cluster}").json()["nodes"]
    nodes = [bare.call("GET", f"/nodes/{n}").json() for n in node_ids]
    devices = {
        d["id"]: Device(d["id"], d["name"], n["id"], n["zone"], d.get("tags") or {})
        for n in nodes
        for d in n["devices"]
    }
    storage = [n["hostnames"]["storage"][0] for n in sorted(nodes, key=lambda n: n["id"])]
    return Topology(target, cluster, devices, storage)


@pytest.fixture(scope="module")
def topology(placement_target: Target) -> Iterator[Topology]:
    found = _read_topology(placement_target)
    zones = sorted({d.zone for d in found.devices.values()})
    if zones != [1, 2, 3] or len(found.devices) != 6:
        pytest.skip("needs the 3-zone, 2-devices-a-node topology of heketi-mock-topology.json")
    for device in found.devices.values():
        kind = "hdd" if device.zone == 3 or device.name.endswith("-b") else "ssd"
        answer = found.call(
            "POST", f"/devices/{device.id}/tags", {"change_type": "set", "tags": {"disktype": kind}}
        )
        assert answer.status_code == 200, answer.text
    yield _read_topology(placement_target)
    for device in found.devices.values():
        found.call(
            "POST", f"/devices/{device.id}/tags", {"change_type": "set", "tags": device.tags}
        )


@pytest.fixture
def client(topology: Topology) -> Iterator[HeketiClient]:
    heketi = HeketiClient(topology.target.config())
    yield heketi
    remove_our_volumes(heketi)
    heketi.close()


def create(
    client: HeketiClient,
    options: tuple[str, ...],
    *,
    size: int = 1,
    durability: Durability = REPLICA_3,
) -> str:
    request = VolumeCreateRequest(
        size_gib=size, name=unique("place"), durability=durability, gluster_volume_options=options
    )
    return client.create_volume(request).id


def refusal(client: HeketiClient, options: tuple[str, ...], **kwargs: Any) -> str:
    with pytest.raises(HeketiError) as raised:
        create(client, options, **kwargs)
    return str(raised.value)


def bricks(topology: Topology, volume_id: str) -> list[tuple[int, Device]]:
    """(size KiB, device) of each brick, smallest first."""
    info = topology.call("GET", f"/volumes/{volume_id}").json()
    found = [(b["size"], topology.devices[b["device"]]) for b in info["bricks"]]
    return sorted(found, key=lambda b: b[0])


# -- arbiter ---------------------------------------------------------------------------


def test_an_arbiter_volume_answers_as_heketi_does_field_by_field(
    client: HeketiClient, topology: Topology
) -> None:
    volume_id = create(client, (ARBITER,))
    info = topology.call("GET", f"/volumes/{volume_id}").json()
    name = info["name"]
    assert sorted(info) == sorted(
        [
            "size", "name", "durability", "glustervolumeoptions", "snapshot", "id",
            "cluster", "mount", "blockinfo", "bricks",
        ]
    )  # fmt: skip
    assert (info["size"], info["id"], info["cluster"]) == (1, volume_id, topology.cluster)
    assert info["durability"] == {"type": "replicate", "replicate": {"replica": 3}, "disperse": {}}
    assert info["glustervolumeoptions"] == ["", ARBITER, ""]
    assert info["snapshot"] == {"enable": False, "factor": 1}
    assert info["blockinfo"] == {}
    hosts = topology.storage_hosts
    assert info["mount"] == {
        "glusterfs": {
            "hosts": hosts,
            "device": f"{hosts[0]}:{name}",
            "options": {"backup-volfile-servers": ",".join(hosts[1:])},
        }
    }
    assert [b["id"] for b in info["bricks"]] == sorted(b["id"] for b in info["bricks"])
    for brick in info["bricks"]:
        assert sorted(brick) == ["device", "id", "node", "path", "size", "volume"]
        assert brick["path"] == (
            f"/var/lib/heketi/mounts/vg_{brick['device']}/brick_{brick['id']}/brick"
        )
        assert (brick["volume"], brick["node"]) == (
            volume_id,
            topology.devices[brick["device"]].node,
        )
    # two data bricks of the whole size; the arbiter 1 GiB / 64 KiB per file = 16 MiB
    assert sorted(b["size"] for b in info["bricks"]) == [16384, GIB_KIB, GIB_KIB]
    assert len({b["node"] for b in info["bricks"]}) == 3


@pytest.mark.parametrize(
    ("average", "arbiter_kib"),
    [
        ("16", 10 * GIB_KIB // 16),
        ("0", 10 * GIB_KIB // 64),  # 0: the 64 KiB default
        ("1024", 16384),  # 10 MiB, raised to the 16 MiB XFS minimum
        ("64k", 10 * GIB_KIB // 64),  # not a whole number: the default
    ],
)
def test_the_arbiter_brick_is_sized_by_the_average_file_size(
    client: HeketiClient, topology: Topology, average: str, arbiter_kib: int
) -> None:
    volume_id = create(client, (ARBITER, f"user.heketi.average-file-size {average}"), size=10)
    sizes = [size for size, _ in bricks(topology, volume_id)]
    assert sizes == [arbiter_kib, 10 * GIB_KIB, 10 * GIB_KIB]


def test_an_average_file_larger_than_the_brick_is_heketis_refusal(client: HeketiClient) -> None:
    message = refusal(client, (ARBITER, "user.heketi.average-file-size 2000000"))
    assert message == (
        "Failed to allocate new volume: Average file size (2000000) is greater than "
        "Brick size (1048576)"
    )


@pytest.mark.parametrize(
    ("options", "durability", "sizes"),
    [
        (("user.heketi.arbiter yes",), REPLICA_3, [GIB_KIB] * 3),  # Go's ParseBool: not true
        (("user.heketi.arbiter 1",), REPLICA_3, [16384, GIB_KIB, GIB_KIB]),
        ((ARBITER, "user.heketi.arbiter false"), REPLICA_3, [GIB_KIB] * 3),  # last one wins
        ((ARBITER,), REPLICA_2, [GIB_KIB] * 2),  # no third brick to discount
    ],
    ids=["yes", "one", "last-wins", "replica-2"],
)
def test_which_options_make_an_arbiter(
    client: HeketiClient,
    topology: Topology,
    options: tuple[str, ...],
    durability: Durability,
    sizes: list[int],
) -> None:
    volume_id = create(client, options, durability=durability)
    assert [size for size, _ in bricks(topology, volume_id)] == sizes


def test_a_device_tagged_arbiter_required_gets_the_arbiter_brick(
    client: HeketiClient, topology: Topology
) -> None:
    chosen = next(d for d in topology.devices.values() if d.zone == 3 and d.name.endswith("-b"))
    update = {"change_type": "update", "tags": {"arbiter": "required"}}
    assert topology.call("POST", f"/devices/{chosen.id}/tags", update).status_code == 200
    try:
        volume_id = create(client, (ARBITER,))
        (arbiter, *data) = bricks(topology, volume_id)
    finally:
        remove = {"change_type": "delete", "tags": {"arbiter": ""}}
        topology.call("POST", f"/devices/{chosen.id}/tags", remove)
    assert arbiter[1].id == chosen.id
    assert all(device.id != chosen.id for _, device in data)


# -- device tags and zones ----------------------------------------------------------------


def test_a_tag_match_keeps_every_brick_on_matching_devices(
    client: HeketiClient, topology: Topology
) -> None:
    volume_id = create(client, (SSD,), durability=REPLICA_2)
    placed = bricks(topology, volume_id)
    assert [device.tags for _, device in placed] == [{"disktype": "ssd"}] * 2


def test_a_not_equal_rule_is_the_inverse_match(client: HeketiClient, topology: Topology) -> None:
    volume_id = create(client, ("user.heketi.device-tag-match disktype!=ssd",))
    placed = bricks(topology, volume_id)
    assert [device.tags for _, device in placed] == [{"disktype": "hdd"}] * 3


def test_more_bricks_than_matching_nodes_is_no_space(client: HeketiClient) -> None:
    assert refusal(client, (SSD,)) == NO_SPACE  # replica 3, two nodes with an SSD


@pytest.mark.parametrize("rule", ["disktype", "=ssd", "disk type=ssd"])
def test_a_malformed_tag_rule_is_heketis_refusal(client: HeketiClient, rule: str) -> None:
    message = refusal(client, (f"user.heketi.device-tag-match {rule}",))
    assert message == (
        f"Failed to allocate new volume: Invalid tag matching rule: Invalid tag match rule: {rule}"
    )


def test_strict_zone_checking_puts_each_brick_in_its_own_zone(
    client: HeketiClient, topology: Topology
) -> None:
    volume_id = create(client, (STRICT,))
    assert sorted(device.zone for _, device in bricks(topology, volume_id)) == [1, 2, 3]


def test_strict_zones_and_a_tag_place_within_the_zones_that_have_it(
    client: HeketiClient, topology: Topology
) -> None:
    volume_id = create(client, (STRICT, SSD), durability=REPLICA_2)
    assert sorted(device.zone for _, device in bricks(topology, volume_id)) == [1, 2]
    assert refusal(client, (STRICT, SSD)) == NO_SPACE  # replica 3: only two zones have one


def test_an_arbiter_volume_honours_tags_too(client: HeketiClient) -> None:
    assert refusal(client, (ARBITER, SSD)) == NO_SPACE


# -- the tags routes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"tags": {"a": "b"}}, 400, "validation failed: change_type: cannot be blank."),
        (
            {"change_type": "bogus", "tags": {"a": "b"}},
            400,
            "validation failed: change_type: must be a valid value.",
        ),
        (
            {"change_type": "set", "tags": {"a b": "c"}},
            400,
            "validation failed: tags: invalid characters in tag name a b.",
        ),
        (
            {"change_type": "set", "tags": {"k" * 33: "v"}},
            400,
            f"validation failed: tags: tag name {'k' * 33}: the length must be between 1 and 32.",
        ),
        (
            {"change_type": "set", "tags": {"a": "v" * 65}},
            400,
            "validation failed: tags: value of tag a: the length must be no more than 64.",
        ),
        ({"change_type": "set", "tags": {"a": 1}}, 422, "request unable to be parsed"),
    ],
    ids=["no-change-type", "bad-change-type", "bad-name", "long-name", "long-value", "not-text"],
)
def test_a_bad_tags_change_is_refused_as_heketi_refuses_it(
    topology: Topology, body: dict[str, Any], status: int, text: str
) -> None:
    device = next(iter(topology.devices))
    answer = topology.call("POST", f"/devices/{device}/tags", body)
    assert (answer.status_code, answer.text) == (status, text + "\n")


def test_node_tags_are_set_updated_and_deleted(topology: Topology) -> None:
    node = next(iter(topology.devices.values())).node
    path = f"/nodes/{node}/tags"
    steps = [
        ({"change_type": "set", "tags": {"rack": "r1", "row": "2"}}, {"rack": "r1", "row": "2"}),
        ({"change_type": "update", "tags": {"rack": "r9"}}, {"rack": "r9", "row": "2"}),
        ({"change_type": "delete", "tags": {"row": ""}}, {"rack": "r9"}),
        ({"change_type": "set", "tags": {}}, {}),
    ]
    for body, tags in steps:
        answer = topology.call("POST", path, body)
        assert (answer.status_code, answer.json()) == (200, tags)
    assert "tags" not in topology.call("GET", f"/nodes/{node}").json()
    unknown = topology.call("POST", f"/nodes/{'0' * 32}/tags", {"change_type": "set"})
    assert (unknown.status_code, unknown.text) == (404, "Id not found\n")
