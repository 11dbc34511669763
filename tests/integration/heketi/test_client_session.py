"""What the client takes from its `requests.Session`, over real HTTP: every request
passes through `send` (the controller's metrics hook), and the session's environment
settings (proxies) are read once, when the client is made."""

import socket

import pytest
import requests

from provisioner.heketi import (
    Durability,
    HeketiClient,
    HeketiInvalidRequest,
    HeketiUnavailable,
    VolumeCreateRequest,
)
from testbed.heketi.server import HeketiTestServer
from tests.integration.heketi.conftest import fast_config

PEM_LIKE_KEY = "-----BEGIN PUBLIC KEY-----\nnot-a-shared-secret\n-----END PUBLIC KEY-----"


class RecordingSession(requests.Session):
    """Records each request that reaches `send`, as the controller's metrics session does."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.sent.append((request.method or "", request.path_url))
        return super().send(request, **kwargs)  # type: ignore[arg-type]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_every_request_of_a_create_passes_through_the_sessions_send(
    server: HeketiTestServer,
) -> None:
    session = RecordingSession()
    heketi = HeketiClient(fast_config(server.url), session=session)
    volume = heketi.create_volume(
        VolumeCreateRequest(
            size_gib=1, name="pvc-sent", durability=Durability(type="replicate", replica=3)
        )
    )
    methods = [method for method, _ in session.sent]
    assert methods[0] == "POST" and session.sent[0][1] == "/volumes"
    assert session.sent[-1] == ("GET", f"/volumes/{volume.id}")
    assert all(path.startswith("/queue/") for _, path in session.sent[1:-1])


def test_a_proxy_named_by_the_environment_is_used_when_the_session_trusts_it(
    server: HeketiTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", closed_port_url())
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    heketi = HeketiClient(fast_config(server.url, retry_attempts=1), session=requests.Session())
    with pytest.raises(HeketiUnavailable):
        heketi.hello()


def test_environment_settings_are_read_once_when_the_client_is_made(
    server: HeketiTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", closed_port_url())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    session = requests.Session()
    heketi = HeketiClient(fast_config(server.url, retry_attempts=1), session=session)
    monkeypatch.delenv("NO_PROXY")  # would send the next request to the dead proxy
    heketi.hello()
    assert session.trust_env is False


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
