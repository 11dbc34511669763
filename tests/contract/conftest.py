"""Checks that hold for the Heketi test server AND for a real Heketi v10.4.1.

Every test takes the `target` fixture: the Heketi test server (in `make test`),
and a real Heketi when `HEKETI_URL` (and `HEKETI_KEY`, the admin key) are set —
`make contract HEKETI_URL=http://127.0.0.1:18080 HEKETI_KEY=adminsecret`. Against
a real Heketi the tests see only what a client sees (requests recorded on the
client side) and remove every volume they create (names start with `NAME_PREFIX`).
"""

import contextlib
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from provisioner.heketi.client import HeketiClient
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.errors import HeketiNotFound
from provisioner.heketi.session import Answer, HeketiSession, Request, Timeouts
from testbed.controller_world import OURS, Target
from testbed.heketi.server import HeketiTestServer

TESTBED_KEY = "contract-admin-key-0123456789abcdef0123"
#: Every volume these tests create starts with this (a real Heketi may hold others).
NAME_PREFIX = f"{OURS}-"


def unique(label: str) -> str:
    return f"{NAME_PREFIX}{label}-{uuid.uuid4().hex[:10]}"


def targets(kind: str, **server: Any) -> Iterator[Target]:
    """The real Heketi of `HEKETI_URL` (skipped when unset) or a Heketi test server
    made with `server`'s keyword arguments, for a fixture parametrized by `kind`."""
    if kind == "real":
        url = os.environ.get("HEKETI_URL")
        if not url:
            pytest.skip("no real Heketi: make contract HEKETI_URL=... HEKETI_KEY=...")
        yield Target(url, os.environ.get("HEKETI_KEY", ""), None)
        return
    with HeketiTestServer(admin_key=TESTBED_KEY, **server) as test_server:
        yield Target(test_server.url, TESTBED_KEY, test_server)


@pytest.fixture(scope="module", params=["testbed", "real"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield from targets(request.param)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    status: int
    text: str


class RecordingSession(HeketiSession):
    """Records every request the client sends and the answer's status (client side,
    so it works against any Heketi), in `calls` (its own list unless one is given)."""

    def __init__(self, config: HeketiConfig, calls: list[Call] | None = None) -> None:
        super().__init__(config)
        self.calls: list[Call] = [] if calls is None else calls

    def send(self, request: Request, *, timeout: Timeouts) -> Answer:
        answer = super().send(request, timeout=timeout)
        path = urllib.parse.urlsplit(request.path).path
        text = answer.body[:200].decode("utf-8", errors="replace")
        self.calls.append(Call(request.method, path, answer.status, text))
        return answer


def remove_our_volumes(client: HeketiClient) -> None:
    """Delete every volume a contract test made (by name prefix)."""
    for volume_id, known in client.volume_identities().items():
        if known.name.startswith(OURS):
            with contextlib.suppress(HeketiNotFound):
                client.delete_volume(volume_id)


# The Kubernetes side of a contract test (the API test server, or a real cluster).
from tests.contract.clusters import cluster  # noqa: E402, F401
