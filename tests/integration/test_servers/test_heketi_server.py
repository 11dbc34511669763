"""The Heketi test server answers like Heketi v10.4 (status, headers, plain-text bodies)."""

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from testbed.heketi.server import HeketiTestServer
from tests.integration.test_servers.heketi_http import ADMIN_KEY, USER_KEY, call, token, wait_done

QUEUE_LOCATION = re.compile(r"^/queue/[0-9a-f]{32}$")


@pytest.fixture
def server() -> Iterator[HeketiTestServer]:
    with HeketiTestServer(admin_key=ADMIN_KEY, user_key=USER_KEY, device_gib=100) as srv:
        yield srv


def create(server: HeketiTestServer, name: str, size: int = 1, **extra: Any) -> str:
    body = {
        "size": size,
        "name": name,
        "durability": {"type": "replicate", "replicate": {"replica": 3}},
        **extra,
    }
    answer = call(server.url, "POST", "/volumes", body=body)
    assert answer.status_code == 202, answer.text
    done = wait_done(server.url, answer.headers["Location"])
    assert done.status_code == 303, done.text
    return done.headers["Location"].rsplit("/", 1)[1]


def now() -> int:
    return int(time.time())


# -- authentication -------------------------------------------------------------

# Each case builds its header when the test runs: tokens made at collection time
# would age (iat, exp) while the rest of the suite runs.
AUTH_CASES = [
    pytest.param(
        lambda: None,
        "GET",
        "/clusters",
        401,
        "Required authorization token not found",
        id="no-authorization-header",
    ),
    pytest.param(
        lambda: f"bearer {token('GET', '/clusters', key='wrong-key-0123456789abcdef0123456')}",
        "GET",
        "/clusters",
        401,
        "Invalid JWT token: signature is invalid (client and server secrets may not match)",
        id="wrong-key",
    ),
    pytest.param(
        lambda: "user",
        "GET",
        "/clusters",
        401,
        "Administrator access required",
        id="user-role-on-clusters",
    ),
    pytest.param(
        lambda: "user",
        "GET",
        "/volumes/",
        401,
        "Administrator access required",
        id="user-role-on-volumes-with-trailing-slash",
    ),
    pytest.param(
        lambda: f"bearer {token('GET', '/volumes')}",
        "GET",
        "/clusters",
        401,
        "Invalid qsh claim in token",
        id="wrong-qsh",
    ),
    pytest.param(
        lambda: f"bearer {token('GET', '/clusters', iat=now() + 200)}",
        "GET",
        "/clusters",
        401,
        "Invalid JWT token: Token used before issued (client and server clocks may differ)",
        id="iat-beyond-leeway",
    ),
    pytest.param(
        lambda: f"bearer {token('GET', '/clusters', iss='root')}",
        "GET",
        "/clusters",
        401,
        "Invalid JWT token: Unknown user",
        id="unknown-issuer",
    ),
    pytest.param(
        lambda: f"bearer {token('GET', '/clusters', iss=None)}",
        "GET",
        "/clusters",
        401,
        "Invalid JWT token: Token missing iss claim",
        id="no-issuer",
    ),
    pytest.param(
        lambda: token("GET", "/clusters"),
        "GET",
        "/clusters",
        400,
        "Authorization header format must be Bearer {token}",
        id="no-bearer-scheme",
    ),
    pytest.param(
        lambda: "bearer ",
        "GET",
        "/clusters",
        400,
        "Authorization header format must be Bearer {token}",
        id="bearer-without-token",
    ),
    pytest.param(
        lambda: "bearer not-a-jwt",
        "GET",
        "/clusters",
        401,
        "Invalid JWT token: token contains an invalid number of segments",
        id="malformed-token",
    ),
]


@pytest.mark.parametrize(("authorization", "method", "path", "status", "message"), AUTH_CASES)
def test_auth_failures_answer_with_heketis_status_and_wording(
    server: HeketiTestServer,
    authorization: Callable[[], str | None],
    method: str,
    path: str,
    status: int,
    message: str,
) -> None:
    answer = call(server.url, method, path, authorization=authorization())
    assert (answer.status_code, answer.text) == (status, message + "\n")
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_expired_token_reports_by_how_much(server: HeketiTestServer) -> None:
    expired = token("GET", "/clusters", exp=now() - 90)
    answer = call(server.url, "GET", "/clusters", authorization=f"bearer {expired}")
    assert answer.status_code == 401
    assert re.fullmatch(r"Invalid JWT token: Token is expired by 1m3[01]s\n", answer.text)


def test_token_without_exp_counts_as_expired(server: HeketiTestServer) -> None:
    answer = call(
        server.url,
        "GET",
        "/clusters",
        authorization=f"bearer {token('GET', '/clusters', exp=None)}",
    )
    assert answer.status_code == 401
    assert answer.text.startswith("Invalid JWT token: Token is expired by ")


def test_iat_within_the_120_second_leeway_is_accepted(server: HeketiTestServer) -> None:
    skewed = token("GET", "/clusters", iat=now() + 100)
    assert call(server.url, "GET", "/clusters", authorization=f"bearer {skewed}").ok


def test_wrong_key_wins_over_an_expired_token(server: HeketiTestServer) -> None:
    bad = token("GET", "/clusters", exp=now() - 90, key="wrong-key-0123456789abcdef0123456")
    answer = call(server.url, "GET", "/clusters", authorization=f"bearer {bad}")
    assert "signature is invalid" in answer.text


def test_hello_needs_no_token(server: HeketiTestServer) -> None:
    answer = call(server.url, "GET", "/hello", authorization=None)
    assert (answer.status_code, answer.text) == (200, "Hello from Heketi")
    assert answer.headers["Content-Type"] == "text/plain; charset=UTF-8"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_user_role_may_call_exactly_volumes(server: HeketiTestServer, method: str) -> None:
    body = {"size": 1, "name": "by-user"} if method == "POST" else None
    answer = call(server.url, method, "/volumes", body=body, authorization="user")
    assert answer.status_code == (202 if method == "POST" else 200)


def test_server_without_auth_accepts_requests_without_token() -> None:
    with HeketiTestServer(auth=False) as srv:
        assert call(srv.url, "GET", "/clusters", authorization=None).status_code == 200


# -- routing ------------------------------------------------------------------------


def test_trailing_slash_redirects_permanently(server: HeketiTestServer) -> None:
    answer = call(server.url, "GET", "/clusters/")
    assert (answer.status_code, answer.headers["Location"]) == (301, "/clusters")


# Each row observed on the real Heketi v10.4.1 binary (mock executor) with an admin token.
ROUTER_CASES = [
    pytest.param("GET", "/topology", 404, "Invalid path or request\n", id="no-topology-route"),
    pytest.param("GET", "/nothing/", 404, "Invalid path or request\n", id="unknown-with-slash"),
    pytest.param("GET", "/", 404, "Invalid path or request\n", id="root"),
    pytest.param("GET", "/volumes/xyz", 404, "Invalid path or request\n", id="id-not-hex"),
    pytest.param("GET", "/queue/zz", 404, "Invalid path or request\n", id="queue-id-not-hex"),
    pytest.param("POST", "/hello", 404, "Invalid path or request\n", id="hello-by-post"),
    pytest.param("GET", "/hello/", 404, "Invalid path or request\n", id="hello-with-slash"),
    pytest.param("PUT", "/volumes", 405, "", id="put-volumes"),
    pytest.param("DELETE", "/volumes", 405, "", id="delete-volume-list"),
    pytest.param("PATCH", "/volumes/abcd", 405, "", id="patch-volume"),
    pytest.param("POST", "/clusters/abc", 405, "", id="post-cluster"),
    pytest.param("GET", "/nodes", 405, "", id="get-node-list"),
    pytest.param("GET", "/volumes/abcd/expand", 405, "", id="get-expand"),
    pytest.param("GET", "/volumes/abcd/expand/", 405, "", id="get-expand-with-slash"),
    pytest.param("PUT", "/volumes/", 405, "", id="put-volumes-with-slash"),
    pytest.param("HEAD", "/volumes", 405, "", id="head-volumes"),
    pytest.param("GET", "/volumes/ABCD", 404, "Id not found\n", id="upper-case-id-unknown"),
]


@pytest.mark.parametrize(("method", "path", "status", "text"), ROUTER_CASES)
def test_the_router_answers_paths_and_methods_as_heketi_v10_4_1(
    server: HeketiTestServer, method: str, path: str, status: int, text: str
) -> None:
    answer = call(server.url, method, path)
    assert (answer.status_code, answer.text) == (status, text)


def test_a_not_found_path_answers_go_plain_text(server: HeketiTestServer) -> None:
    answer = call(server.url, "GET", "/topology")
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_a_wrong_method_answers_405_with_an_empty_body(server: HeketiTestServer) -> None:
    answer = call(server.url, "PUT", "/volumes")
    assert answer.headers["Content-Length"] == "0" and "Content-Type" not in answer.headers


def test_trailing_slash_on_an_id_route_redirects_to_it(server: HeketiTestServer) -> None:
    answer = call(server.url, "GET", "/volumes/abcd/")
    assert (answer.status_code, answer.headers["Location"]) == (301, "/volumes/abcd")
    assert answer.text == '<a href="/volumes/abcd">Moved Permanently</a>.\n\n'


def test_a_real_route_this_server_does_not_serve_says_so(server: HeketiTestServer) -> None:
    answer = call(server.url, "GET", "/db/dump")
    assert (answer.status_code, answer.text) == (
        501,
        "the Heketi test server does not serve DbDump\n",
    )


def test_metrics_needs_no_token_and_is_not_served_here(server: HeketiTestServer) -> None:
    answer = call(server.url, "GET", "/metrics", authorization=None)
    assert (answer.status_code, answer.text) == (
        501,
        "the Heketi test server does not serve Metrics\n",
    )


def test_an_unknown_path_needs_a_token_like_any_other(server: HeketiTestServer) -> None:
    answer = call(server.url, "GET", "/topology", authorization=None)
    assert (answer.status_code, answer.text) == (401, "Required authorization token not found\n")


# -- volume create validation -------------------------------------------------------------

CREATE_CASES = [
    pytest.param(
        {"size": 0, "name": "v"}, 400, "validation failed: size: cannot be blank.", id="size-zero"
    ),
    pytest.param(
        {"size": -1, "name": "v"},
        400,
        "validation failed: size: must be no less than 1.",
        id="size-negative",
    ),
    pytest.param(
        {"size": 1, "durability": {"type": "replicate", "replicate": {"replica": 4}}},
        400,
        "Invalid replica value",
        id="replica-4",
    ),
    pytest.param(
        {"size": 1, "durability": {"type": "disperse", "disperse": {"data": 3, "redundancy": 1}}},
        400,
        "Invalid dispersion combination: 3+1",
        id="disperse-3+1",
    ),
    pytest.param(
        {"size": 1, "name": "bad name!"},
        400,
        "validation failed: name: must be in a valid format.",
        id="bad-name",
    ),
    pytest.param(
        {"size": 0, "name": "bad name!"},
        400,
        "validation failed: name: must be in a valid format; size: cannot be blank.",
        id="two-problems-sorted-by-field",
    ),
    pytest.param(
        {"size": 1, "durability": {"type": "mirror"}},
        400,
        "Unknown durability type",
        id="unknown-durability",
    ),
    pytest.param({"size": 1, "gid": -5}, 400, "Bad group id less than zero", id="negative-gid"),
    pytest.param(
        {"size": 1, "snapshot": {"enable": True, "factor": 0.5}},
        400,
        "Invalid snapshot factor",
        id="snapshot-factor-below-1",
    ),
    pytest.param(
        {"size": 1, "clusters": ["0" * 32]},
        400,
        f"Cluster id {'0' * 32} not found",
        id="unknown-cluster",
    ),
    pytest.param({"size": "big"}, 422, "request unable to be parsed", id="size-not-a-number"),
    pytest.param(
        {"size": 0, "glustervolumeoptions": "performance.cache-size 1GB"},
        422,
        "request unable to be parsed",
        id="mistyped-field-fails-decoding-before-validation",
    ),
    pytest.param(
        {
            "size": 1,
            "durability": {"type": "replicate", "replicate": {"replica": 4}},
            "snapshot": {"enable": True, "factor": 0.5},
        },
        400,
        "Invalid snapshot factor",
        id="snapshot-factor-checked-before-replica",
    ),
    pytest.param(
        {"size": 1, "snapshot": {"enable": "yes", "factor": 2}},
        422,
        "request unable to be parsed",
        id="snapshot-enable-not-a-boolean",
    ),
    pytest.param(
        {"size": 1000}, 500, "Failed to allocate new volume: No space", id="larger-than-free-space"
    ),
]


@pytest.mark.parametrize(("body", "status", "message"), CREATE_CASES)
def test_create_is_refused_synchronously_with_heketis_message(
    server: HeketiTestServer, body: dict[str, Any], status: int, message: str
) -> None:
    answer = call(server.url, "POST", "/volumes", body=body)
    assert (answer.status_code, answer.text) == (status, message + "\n")
    assert server.volumes() == []


def test_create_with_unparsable_json_is_422(server: HeketiTestServer) -> None:
    answer = call(server.url, "POST", "/volumes", raw_body=b"{not json")
    assert (answer.status_code, answer.text) == (422, "request unable to be parsed\n")


@pytest.mark.parametrize(("data", "redundancy"), [(2, 1), (4, 2), (8, 3), (8, 4)])
def test_create_accepts_heketis_disperse_combinations(data: int, redundancy: int) -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, nodes=12, device_gib=10) as srv:
        body = {
            "size": data,  # the smallest Heketi accepts: a 1 GiB brick per data brick
            "durability": {
                "type": "disperse",
                "disperse": {"data": data, "redundancy": redundancy},
            },
        }
        assert call(srv.url, "POST", "/volumes", body=body).status_code == 202


def test_a_disperse_volume_smaller_than_a_gib_per_data_brick_is_refused(
    server: HeketiTestServer,
) -> None:
    # observed on Heketi v10.4.1 (2+1, 1 GiB): 400 with this text, before any placement
    body = {"size": 1, "durability": {"type": "disperse", "disperse": {"data": 2, "redundancy": 1}}}
    answer = call(server.url, "POST", "/volumes", body=body)
    assert (answer.status_code, answer.text) == (
        400,
        "Requested volume size (1 GB) is smaller than the minimum supported volume size "
        "(2097152)\n",
    )


def test_create_with_a_name_in_use_is_refused_directly(server: HeketiTestServer) -> None:
    create(server, "taken")
    answer = call(server.url, "POST", "/volumes", body={"size": 1, "name": "taken"})
    assert (answer.status_code, answer.text) == (
        500,
        "Failed to allocate new volume: Volume name 'taken' already in use\n",
    )


def test_name_is_reserved_while_the_create_still_runs(server: HeketiTestServer) -> None:
    server.set_latency(2000)
    first = call(server.url, "POST", "/volumes", body={"size": 1, "name": "racing"})
    second = call(server.url, "POST", "/volumes", body={"size": 1, "name": "racing"})
    assert (first.status_code, second.status_code) == (202, 500)
    assert call(server.url, "GET", "/volumes").json() == {"volumes": []}


# -- async queue -----------------------------------------------------------------------


def test_accepted_create_answers_202_with_a_queue_location_and_no_body(
    server: HeketiTestServer,
) -> None:
    answer = call(server.url, "POST", "/volumes", body={"size": 1, "name": "queued"})
    assert answer.status_code == 202
    assert QUEUE_LOCATION.match(answer.headers["Location"])
    assert answer.content == b""


def test_queue_answers_pending_while_the_operation_runs(server: HeketiTestServer) -> None:
    server.set_latency(2000)
    location = call(server.url, "POST", "/volumes", body={"size": 1}).headers["Location"]
    answer = call(server.url, "GET", location)
    assert (answer.status_code, answer.headers["X-Pending"], answer.content) == (200, "true", b"")


def test_finished_create_redirects_to_the_volume_once(server: HeketiTestServer) -> None:
    location = call(server.url, "POST", "/volumes", body={"size": 1}).headers["Location"]
    done = wait_done(server.url, location)
    assert done.status_code == 303
    assert re.fullmatch(r"/volumes/[0-9a-f]{32}", done.headers["Location"])
    again = call(server.url, "GET", location)
    assert (again.status_code, again.text) == (404, "Id not found\n")


def test_finished_delete_answers_204(server: HeketiTestServer) -> None:
    volume_id = create(server, "doomed")
    location = call(server.url, "DELETE", f"/volumes/{volume_id}").headers["Location"]
    assert wait_done(server.url, location).status_code == 204
    assert server.volumes() == []


def test_operations_info_counts_the_operations_still_pending(server: HeketiTestServer) -> None:
    idle = call(server.url, "GET", "/operations")
    assert (idle.status_code, idle.json()) == (
        200,
        {"total": 0, "in_flight": 0, "stale": 0, "failed": 0, "new": 0},
    )
    server.set_latency(60_000)
    call(server.url, "POST", "/volumes", body={"size": 1, "name": "slow"})
    busy = call(server.url, "GET", "/operations").json()
    assert (busy["total"], busy["in_flight"], busy["new"]) == (1, 1, 1)


def test_operations_info_is_for_the_admin_only(server: HeketiTestServer) -> None:
    answer = call(server.url, "GET", "/operations", authorization="user")
    assert (answer.status_code, answer.text) == (401, "Administrator access required\n")


def test_unknown_queue_id_is_404(server: HeketiTestServer) -> None:
    answer = call(server.url, "GET", f"/queue/{'a' * 32}")
    assert (answer.status_code, answer.text) == (404, "Id not found\n")


def test_failed_operation_answers_500_with_its_message_in_the_queue(
    server: HeketiTestServer,
) -> None:
    server.fail_next("volume_create", message="brick mount failed", in_queue=True)
    location = call(server.url, "POST", "/volumes", body={"size": 1, "name": "x"}).headers[
        "Location"
    ]
    done = wait_done(server.url, location)
    assert (done.status_code, done.text) == (500, "brick mount failed\n")
    assert server.volumes() == []
    assert call(server.url, "POST", "/volumes", body={"size": 1, "name": "x"}).status_code == 202


# -- volumes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/volumes/" + "f" * 32, None),
        ("DELETE", "/volumes/" + "f" * 32, None),
        ("POST", "/volumes/" + "f" * 32 + "/expand", {"expand_size": 1}),
    ],
    ids=["get", "delete", "expand"],
)
def test_unknown_volume_is_404_id_not_found(
    server: HeketiTestServer, method: str, path: str, body: Any
) -> None:
    answer = call(server.url, method, path, body=body)
    assert (answer.status_code, answer.text) == (404, "Id not found\n")


def test_volume_info_has_heketis_fields(server: HeketiTestServer) -> None:
    volume_id = create(server, "shaped", 2, gid=2001, glustervolumeoptions=["performance.rda on"])
    info = call(server.url, "GET", f"/volumes/{volume_id}").json()
    assert {
        "id",
        "name",
        "size",
        "cluster",
        "durability",
        "gid",
        "glustervolumeoptions",
        "snapshot",
        "mount",
        "bricks",
        "blockinfo",
    } <= set(info)
    assert (info["name"], info["size"], info["gid"]) == ("shaped", 2, 2001)
    assert info["durability"]["replicate"] == {"replica": 3}
    glusterfs = info["mount"]["glusterfs"]
    assert glusterfs["device"] == f"{glusterfs['hosts'][0]}:shaped"
    assert glusterfs["options"]["backup-volfile-servers"] == ",".join(glusterfs["hosts"][1:])
    assert len(info["bricks"]) == 3


# Observed on real v10.4.1: the (empty) pre- and post-request options surround the request's.
OPTIONS_CASES = [
    pytest.param({}, ["", ""], id="no-options"),
    pytest.param(
        {"glustervolumeoptions": ["performance.rda on"]}, ["", "performance.rda on", ""], id="one"
    ),
]


@pytest.mark.parametrize(("extra", "options"), OPTIONS_CASES)
def test_volume_info_lists_gluster_options_as_heketi_stores_them(
    server: HeketiTestServer, extra: dict[str, Any], options: list[str]
) -> None:
    volume_id = create(server, "opts", **extra)
    info = call(server.url, "GET", f"/volumes/{volume_id}").json()
    assert info["glustervolumeoptions"] == options


def test_a_volume_without_snapshots_reports_factor_one(server: HeketiTestServer) -> None:
    volume_id = create(server, "plain")
    info = call(server.url, "GET", f"/volumes/{volume_id}").json()
    assert info["snapshot"] == {"enable": False, "factor": 1}


def test_node_info_has_heketis_fields(server: HeketiTestServer) -> None:
    (cluster,) = call(server.url, "GET", "/clusters").json()["clusters"]
    node_id = call(server.url, "GET", f"/clusters/{cluster}").json()["nodes"][0]
    node = call(server.url, "GET", f"/nodes/{node_id}").json()
    assert {"zone", "hostnames", "cluster", "id", "state", "devices"} <= set(node)
    assert {"name", "storage", "id", "state", "bricks"} <= set(node["devices"][0])
    assert call(server.url, "GET", "/nodes/abcdef").text == "Id not found\n"


def test_volume_list_and_cluster_info_name_the_volume(server: HeketiTestServer) -> None:
    volume_id = create(server, "listed")
    assert call(server.url, "GET", "/volumes").json() == {"volumes": [volume_id]}
    (cluster,) = call(server.url, "GET", "/clusters").json()["clusters"]
    assert call(server.url, "GET", f"/clusters/{cluster}").json()["volumes"] == [volume_id]


def test_node_info_accounts_for_brick_space(server: HeketiTestServer) -> None:
    def free() -> int:
        (cluster,) = call(server.url, "GET", "/clusters").json()["clusters"]
        nodes = call(server.url, "GET", f"/clusters/{cluster}").json()["nodes"]
        return sum(
            d["storage"]["free"]
            for n in nodes
            for d in call(server.url, "GET", f"/nodes/{n}").json()["devices"]
        )

    before = free()
    volume_id = create(server, "sized", 10)
    # each brick: 10 GiB plus 0.5 % thin-pool metadata in 4 MiB extents (52 MiB); the
    # real Heketi v10.4.1 took exactly 31617024 KiB for this volume
    assert before - free() == 3 * (10 * 1024 * 1024 + 53248)
    location = call(server.url, "DELETE", f"/volumes/{volume_id}").headers["Location"]
    wait_done(server.url, location)
    assert free() == before


def test_expand_adds_size_and_a_brick_set(server: HeketiTestServer) -> None:
    volume_id = create(server, "growing", 2)
    answer = call(server.url, "POST", f"/volumes/{volume_id}/expand", body={"expand_size": 3})
    assert answer.status_code == 202
    done = wait_done(server.url, answer.headers["Location"])
    assert (done.status_code, done.headers["Location"]) == (303, f"/volumes/{volume_id}")
    info = call(server.url, "GET", f"/volumes/{volume_id}").json()
    assert (info["size"], len(info["bricks"])) == (5, 6)


def test_expand_beyond_free_space_is_no_space(server: HeketiTestServer) -> None:
    volume_id = create(server, "capped", 50)
    answer = call(server.url, "POST", f"/volumes/{volume_id}/expand", body={"expand_size": 60})
    assert (answer.status_code, answer.text) == (
        500,
        "Failed to allocate volume expansion: No space\n",
    )


CONFLICT = "The target exists, contains other items, or is in use."


@pytest.mark.parametrize(
    ("method", "suffix", "body", "message"),
    [
        ("DELETE", "", None, f"Failed to set up volume delete: {CONFLICT}"),
        ("POST", "/expand", {"expand_size": 1}, f"Failed to allocate volume expansion: {CONFLICT}"),
    ],
    ids=["delete", "expand"],
)
def test_operation_on_a_volume_being_deleted_is_heketis_500_conflict(
    server: HeketiTestServer, method: str, suffix: str, body: Any, message: str
) -> None:
    volume_id = create(server, "busy")
    server.set_latency(2000)
    assert call(server.url, "DELETE", f"/volumes/{volume_id}").status_code == 202
    again = call(server.url, method, f"/volumes/{volume_id}{suffix}", body=body)
    assert (again.status_code, again.text) == (500, message + "\n")


def test_volume_being_deleted_is_hidden_from_reads(server: HeketiTestServer) -> None:
    volume_id = create(server, "leaving")
    server.set_latency(2000)
    assert call(server.url, "DELETE", f"/volumes/{volume_id}").status_code == 202
    info = call(server.url, "GET", f"/volumes/{volume_id}")
    assert (info.status_code, info.text) == (404, "Id not found\n")
    assert call(server.url, "GET", "/volumes").json() == {"volumes": []}


def test_failed_delete_shows_the_volume_again(server: HeketiTestServer) -> None:
    volume_id = create(server, "stays")
    server.fail_next("volume_delete", in_queue=True, message="Unable to delete volume stays")
    location = call(server.url, "DELETE", f"/volumes/{volume_id}").headers["Location"]
    assert wait_done(server.url, location).status_code == 500
    assert call(server.url, "GET", f"/volumes/{volume_id}").status_code == 200


def test_max_inflight_answers_429_server_busy() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, max_inflight=1, latency_ms=2000) as srv:
        assert call(srv.url, "POST", "/volumes", body={"size": 1}).status_code == 202
        busy = call(srv.url, "POST", "/volumes", body={"size": 1})
        assert (busy.status_code, busy.text) == (429, "Server busy. Retry operation later.\n")


# -- test controls -----------------------------------------------------------------------


def test_fail_next_answers_the_given_status_then_recovers(server: HeketiTestServer) -> None:
    server.fail_next("volume_list", count=2, status=503, message="down")
    answers = [call(server.url, "GET", "/volumes").status_code for _ in range(3)]
    assert answers == [503, 503, 200]


def test_drop_next_closes_the_connection_without_an_answer(server: HeketiTestServer) -> None:
    server.drop_next("volume_list")
    with pytest.raises(requests.ConnectionError):
        call(server.url, "GET", "/volumes")
    assert server.count_status(0) == 1


def test_drop_after_commit_still_creates_the_volume(server: HeketiTestServer) -> None:
    server.drop_next("volume_create", after_commit=True)
    with pytest.raises(requests.ConnectionError):
        call(server.url, "POST", "/volumes", body={"size": 1, "name": "ghost"})
    deadline = time.monotonic() + 5
    while not server.volumes() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [v["name"] for v in server.volumes()] == ["ghost"]


def test_pause_refuses_connections_until_resume(server: HeketiTestServer) -> None:
    server.pause()
    with pytest.raises(requests.ConnectionError):
        call(server.url, "GET", "/hello")
    server.resume()
    assert call(server.url, "GET", "/hello").status_code == 200


def test_restart_loses_the_queue_but_keeps_volumes(server: HeketiTestServer) -> None:
    volume_id = create(server, "survivor")
    location = call(server.url, "POST", "/volumes", body={"size": 1}).headers["Location"]
    server.restart()
    assert call(server.url, "GET", location).status_code == 404
    assert call(server.url, "GET", f"/volumes/{volume_id}").status_code == 200


def _create_running_at_restart(server: HeketiTestServer, name: str) -> None:
    server.set_latency(60_000)
    body = {"size": 1, "name": name}
    assert call(server.url, "POST", "/volumes", body=body).status_code == 202
    server.restart()
    server.set_latency(0)


def test_a_create_running_at_restart_stays_pending_and_keeps_its_name(
    server: HeketiTestServer,
) -> None:
    _create_running_at_restart(server, "interrupted")
    assert call(server.url, "GET", "/volumes").json() == {"volumes": []}
    again = call(server.url, "POST", "/volumes", body={"size": 1, "name": "interrupted"})
    assert (again.status_code, again.text) == (
        500,
        "Failed to allocate new volume: Volume name 'interrupted' already in use\n",
    )
    assert server.stale_operations() == 1


def test_the_stale_cleaner_rolls_a_pending_create_back_and_frees_its_name(
    server: HeketiTestServer,
) -> None:
    _create_running_at_restart(server, "interrupted")
    server.clean_stale_operations()
    assert server.stale_operations() == 0
    assert create(server, "interrupted")
    assert [v["name"] for v in server.volumes()] == ["interrupted"]


def test_the_stale_cleaner_runs_by_itself_after_its_start_delay() -> None:
    with HeketiTestServer(admin_key=ADMIN_KEY, stale_cleanup_seconds=0.2) as srv:
        _create_running_at_restart(srv, "interrupted")
        deadline = time.monotonic() + 30
        while srv.stale_operations() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.stale_operations() == 0 and create(srv, "interrupted")


def test_a_delete_running_at_restart_completes_when_cleaned(server: HeketiTestServer) -> None:
    volume_id = create(server, "going")
    server.set_latency(60_000)
    assert call(server.url, "DELETE", f"/volumes/{volume_id}").status_code == 202
    server.restart()
    assert call(server.url, "GET", f"/volumes/{volume_id}").status_code == 404
    server.clean_stale_operations()
    assert server.volumes() == [] and server.stale_operations() == 0


def test_a_restart_frees_the_operation_limit(server: HeketiTestServer) -> None:
    server.set_latency(60_000)
    for i in range(8):
        call(server.url, "POST", "/volumes", body={"size": 1, "name": f"busy{i}"})
    assert call(server.url, "POST", "/volumes", body={"size": 1}).status_code == 429
    server.restart()
    assert call(server.url, "POST", "/volumes", body={"size": 1}).status_code == 202


def test_request_log_records_method_path_and_status(server: HeketiTestServer) -> None:
    call(server.url, "GET", "/clusters")
    (record,) = server.requests
    assert (record.method, record.path, record.status) == ("GET", "/clusters", 200)


def test_unknown_fault_kind_is_refused(server: HeketiTestServer) -> None:
    with pytest.raises(ValueError, match="unknown operation kind"):
        server.fail_next("volume_explode")


# -- command line -------------------------------------------------------------------------


def test_command_line_server_prints_its_url_and_stops_on_sigterm() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testbed.heketi",
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-key",
            ADMIN_KEY,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}"
        assert call(url, "GET", "/clusters").status_code == 200
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()


def test_command_line_refuses_to_start_without_a_key() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "testbed.heketi", "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "--admin-key" in result.stderr


def test_auth_without_an_admin_key_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="admin_key"):
        HeketiTestServer(admin_key=None)


def test_gluster_mode_rolls_back_whatever_way_the_gluster_cli_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gluster CLI that fails with bytes that are not UTF-8: the failure is not a
    # GlusterCommandError, and must still end the operation in failure, not success.
    fake = tmp_path / "bin" / "gluster"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nprintf '\\377 broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    bricks = tmp_path / "bricks"
    with HeketiTestServer(admin_key=ADMIN_KEY, mode="gluster", bricks_dir=str(bricks)) as srv:
        answer = call(srv.url, "POST", "/volumes", body={"size": 1, "name": "never"})
        assert answer.status_code == 202
        assert wait_done(srv.url, answer.headers["Location"]).status_code == 500
        assert srv.volumes() == []
