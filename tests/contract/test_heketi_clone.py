"""`POST /volumes/{id}/clone` refusals, the same on the test server and a real Heketi.

Only what happens before a clone runs: the real v10.4.1's mock executor cannot clone
(the process panics in `updateCloneBrickPaths` once the operation runs), so the
clone itself is checked against the v10.4.1 source (tests/integration/test_servers/).
"""

import hashlib
import time
from collections.abc import Iterator

import jwt
import pytest
import requests

from provisioner.heketi.client import HeketiClient
from provisioner.heketi.types import Durability, VolumeCreateRequest
from tests.contract.conftest import Target, remove_our_volumes, unique


def post(target: Target, path: str, body: bytes) -> requests.Response:
    now = int(time.time())
    claims = {
        "iss": "admin",
        "iat": now,
        "exp": now + 60,
        "qsh": hashlib.sha256(f"POST&{path}".encode()).hexdigest(),
    }
    token = jwt.encode(claims, target.key, algorithm="HS256")
    headers = {"Authorization": f"bearer {token}", "Content-Type": "application/json"}
    return requests.post(target.url + path, data=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def source(target: Target) -> Iterator[str]:
    client = HeketiClient(target.config())
    request = VolumeCreateRequest(
        size_gib=1, name=unique("clone-src"), durability=Durability(type="none")
    )
    yield client.create_volume(request).id
    remove_our_volumes(client)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        pytest.param(b"not json", 422, "request unable to be parsed", id="not-json"),
        pytest.param(b'{"name": 7}', 422, "request unable to be parsed", id="name-not-a-string"),
        pytest.param(
            b'{"name": "a.b"}',
            400,
            "validation failed: name: must be in a valid format.",
            id="name-with-a-dot",
        ),
    ],
)
def test_a_malformed_clone_request_is_refused_with_heketis_answer(
    target: Target, source: str, body: bytes, status: int, message: str
) -> None:
    answer = post(target, f"/volumes/{source}/clone", body)
    assert (answer.status_code, answer.text) == (status, message + "\n")


def test_a_clone_of_an_unknown_volume_is_404_id_not_found(target: Target) -> None:
    answer = post(target, f"/volumes/{'ab' * 16}/clone", b'{"name": "tcontract-x"}')
    assert (answer.status_code, answer.text) == (404, "Id not found\n")
