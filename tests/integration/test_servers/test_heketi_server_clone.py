"""The Heketi test server clones volumes as Heketi v10.4.1 does (`POST /volumes/{id}/clone`;
sources in testbed/heketi/clone.py). The refusals before any work are contract tests
(tests/contract/test_heketi_clone.py), run against a real Heketi too."""

from collections.abc import Iterator
from typing import Any

import pytest

from testbed.heketi.server import HeketiTestServer
from tests.integration.test_servers.heketi_http import ADMIN_KEY, USER_KEY, call, wait_done
from tests.integration.test_servers.test_heketi_server import QUEUE_LOCATION, create


@pytest.fixture
def server() -> Iterator[HeketiTestServer]:
    with HeketiTestServer(admin_key=ADMIN_KEY, user_key=USER_KEY, device_gib=100) as srv:
        yield srv


def clone(server: HeketiTestServer, source: str, body: Any) -> tuple[int, str, str]:
    """(final status, final Location or message, the queue path) of one clone."""
    answer = call(server.url, "POST", f"/volumes/{source}/clone", body=body)
    assert answer.status_code == 202, answer.text
    assert QUEUE_LOCATION.match(answer.headers["Location"])
    done = wait_done(server.url, answer.headers["Location"])
    return done.status_code, done.headers.get("Location", done.text), answer.headers["Location"]


def info(server: HeketiTestServer, volume_id: str) -> dict[str, Any]:
    answer = call(server.url, "GET", f"/volumes/{volume_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_clone_is_accepted_queued_and_redirected_to_the_new_volume(
    server: HeketiTestServer,
) -> None:
    source = create(server, "source", size=2, gid=2345)

    status, location, _ = clone(server, source, {"name": "copy"})

    assert status == 303
    copy_id = location.rsplit("/", 1)[1]
    assert location == f"/volumes/{copy_id}" and copy_id != source
    assert info(server, copy_id)["name"] == "copy"


def test_a_clone_carries_over_size_gid_durability_options_cluster_and_snapshot(
    server: HeketiTestServer,
) -> None:
    source = create(
        server,
        "source",
        size=3,
        gid=4000,
        glustervolumeoptions=["performance.readdir-ahead off"],
        snapshot={"enable": True, "factor": 1.5},
    )
    _, location, _ = clone(server, source, {"name": "copy"})
    original, copy = info(server, source), info(server, location.rsplit("/", 1)[1])

    for field in ("size", "gid", "durability", "glustervolumeoptions", "cluster", "snapshot"):
        assert copy[field] == original[field], field
    assert copy["mount"]["glusterfs"]["hosts"] == original["mount"]["glusterfs"]["hosts"]
    assert copy["mount"]["glusterfs"]["device"].endswith(":copy")


def test_a_clone_has_one_brick_per_source_brick_on_the_same_devices_taking_no_space(
    server: HeketiTestServer,
) -> None:
    source = create(server, "source", size=5)
    free_before = _free_kib(server)

    _, location, _ = clone(server, source, {"name": "copy"})
    copy = info(server, location.rsplit("/", 1)[1])

    original_bricks = info(server, source)["bricks"]
    assert sorted(b["device"] for b in copy["bricks"]) == sorted(
        b["device"] for b in original_bricks
    )
    assert {b["id"] for b in copy["bricks"]}.isdisjoint(b["id"] for b in original_bricks)
    assert _free_kib(server) == free_before


def test_a_clone_without_a_name_is_called_vol_and_its_id(server: HeketiTestServer) -> None:
    source = create(server, "source")

    _, location, _ = clone(server, source, {})

    copy_id = location.rsplit("/", 1)[1]
    assert info(server, copy_id)["name"] == f"vol_{copy_id}"


def test_a_clone_named_like_an_existing_volume_fails_in_the_queue_and_changes_nothing(
    server: HeketiTestServer,
) -> None:
    source = create(server, "source")
    create(server, "taken")

    status, message, _ = clone(server, source, {"name": "taken"})

    assert status == 500
    assert message.startswith("Failed to clone snapshot tmpsnap_")
    assert message.endswith("to volume taken: Volume with name:taken already exists\n")
    assert sorted(v["name"] for v in server.volumes()) == ["source", "taken"]


def test_the_source_is_hidden_while_it_is_cloned_and_shown_again_after(
    server: HeketiTestServer,
) -> None:
    source = create(server, "source")
    server.set_latency(300)

    answer = call(server.url, "POST", f"/volumes/{source}/clone", body={"name": "copy"})
    hidden = call(server.url, "GET", f"/volumes/{source}")
    again = call(server.url, "POST", f"/volumes/{source}/clone", body={"name": "copy-2"})
    wait_done(server.url, answer.headers["Location"])

    assert (hidden.status_code, hidden.text) == (404, "Id not found\n")
    assert again.status_code == 500  # the real handler panics on a pending source
    assert info(server, source)["name"] == "source"


def test_a_failed_clone_leaves_the_source_visible_and_no_clone(server: HeketiTestServer) -> None:
    source = create(server, "source")
    server.fail_next("volume_clone", in_queue=True, message="snapshot failed")

    status, message, _ = clone(server, source, {"name": "copy"})

    assert (status, message) == (500, "snapshot failed\n")
    assert [v["name"] for v in server.volumes()] == ["source"]
    assert info(server, source)["id"] == source


def test_a_clone_needs_the_admin_role(server: HeketiTestServer) -> None:
    source = create(server, "source")

    answer = call(
        server.url, "POST", f"/volumes/{source}/clone", body={"name": "c"}, authorization="user"
    )

    assert (answer.status_code, answer.text) == (401, "Administrator access required\n")


def test_a_clone_is_refused_with_429_when_the_operation_limit_is_reached() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, max_inflight=1, latency_ms=500) as server:
        source = create(server, "source")
        create_answer = call(
            server.url,
            "POST",
            "/volumes",
            body={"size": 1, "durability": {"type": "none"}},
        )
        answer = call(server.url, "POST", f"/volumes/{source}/clone", body={"name": "c"})
        wait_done(server.url, create_answer.headers["Location"])

    assert (answer.status_code, answer.text) == (429, "Server busy. Retry operation later.\n")


def test_deleting_a_clone_keeps_its_source(server: HeketiTestServer) -> None:
    source = create(server, "source")
    _, location, _ = clone(server, source, {"name": "copy"})

    answer = call(server.url, "DELETE", location)
    done = wait_done(server.url, answer.headers["Location"])

    assert done.status_code == 204
    assert [v["name"] for v in server.volumes()] == ["source"]


def _free_kib(server: HeketiTestServer) -> int:
    clusters = call(server.url, "GET", "/clusters").json()["clusters"]
    total = 0
    for cluster in clusters:
        for node in call(server.url, "GET", f"/clusters/{cluster}").json()["nodes"]:
            devices = call(server.url, "GET", f"/nodes/{node}").json()["devices"]
            total += sum(d["storage"]["free"] for d in devices)
    return total
