"""What the client takes from its `HeketiSession`, over real HTTP: every request
passes through `send` (the controller's metrics hook), on connections kept alive,
and nothing in the environment (proxies) changes where requests go."""

import socket

import pytest

from provisioner.heketi import (
    Durability,
    HeketiClient,
    HeketiConfig,
    HeketiInvalidRequest,
    VolumeCreateRequest,
)
from provisioner.heketi.session import Answer, HeketiSession, Request, Timeouts
from testbed.heketi.server import HeketiTestServer
from tests.integration.heketi.conftest import fast_config

PEM_LIKE_KEY = "-----BEGIN PUBLIC KEY-----\nnot-a-shared-secret\n-----END PUBLIC KEY-----"


class RecordingSession(HeketiSession):
    """Records each request that reaches `send`, as the controller's metrics session does."""

    def __init__(self, config: HeketiConfig) -> None:
        super().__init__(config)
        self.sent: list[tuple[str, str]] = []

    def send(self, request: Request, *, timeout: Timeouts) -> Answer:
        self.sent.append((request.method, request.path))
        return super().send(request, timeout=timeout)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_every_request_of_a_create_passes_through_the_sessions_send(
    server: HeketiTestServer,
) -> None:
    config = fast_config(server.url)
    session = RecordingSession(config)
    heketi = HeketiClient(config, session=session)
    volume = heketi.create_volume(
        VolumeCreateRequest(
            size_gib=1, name="pvc-sent", durability=Durability(type="replicate", replica=3)
        )
    )
    methods = [method for method, _ in session.sent]
    assert methods[0] == "POST" and session.sent[0][1] == "/volumes"
    assert session.sent[-1] == ("GET", f"/volumes/{volume.id}")
    assert all(path.startswith("/queue/") for _, path in session.sent[1:-1])


def test_the_requests_of_a_create_reuse_one_kept_alive_connection(
    server: HeketiTestServer,
) -> None:
    config = fast_config(server.url)
    session = HeketiSession(config)
    heketi = HeketiClient(config, session=session)
    heketi.create_volume(
        VolumeCreateRequest(
            size_gib=1, name="pvc-kept", durability=Durability(type="replicate", replica=3)
        )
    )
    heketi.hello()
    assert session.connections_opened == 1


def test_the_clients_own_session_ignores_proxy_variables(
    server: HeketiTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", closed_port_url())
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    HeketiClient(fast_config(server.url, retry_attempts=1)).hello()


def test_a_public_key_given_as_heketi_key_is_refused_without_showing_it(
    server: HeketiTestServer,
) -> None:
    with pytest.raises(HeketiInvalidRequest, match="shared secret") as caught:
        HeketiClient(fast_config(server.url, key=PEM_LIKE_KEY))
    assert "not-a-shared-secret" not in str(caught.value)


def test_a_connection_heketi_closed_while_idle_is_not_reused_so_a_create_is_sent_once(
    server: HeketiTestServer,
) -> None:
    config = fast_config(server.url, retry_attempts=1)
    session = HeketiSession(config)
    heketi = HeketiClient(config, session=session)
    heketi.hello()
    server.pause()  # cuts the kept connection
    server.resume()
    volume = heketi.create_volume(
        VolumeCreateRequest(
            size_gib=1, name="pvc-after-cut", durability=Durability(type="replicate", replica=3)
        )
    )
    assert session.connections_opened == 2
    assert [v["id"] for v in server.volumes()] == [volume.id]
