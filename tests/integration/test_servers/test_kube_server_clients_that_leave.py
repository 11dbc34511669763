"""A client that goes away mid-request is routine for an API server: no traceback."""

import socket
import struct
import time
from urllib.parse import urlsplit

import pytest

from testbed.kube.server import KubeTestServer

#: How long the server may take to notice the reset and finish the handler thread.
SETTLE_S = 1.0


def _reset_mid_request(url: str) -> None:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n")  # headers unfinished
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_client_that_resets_its_connection_leaves_no_traceback_on_stderr(
    server: KubeTestServer, capfd: pytest.CaptureFixture[str]
) -> None:
    for _ in range(5):
        _reset_mid_request(server.url)
    time.sleep(SETTLE_S)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "Exception occurred during processing" not in err


def test_the_server_still_answers_after_clients_reset(server: KubeTestServer) -> None:
    _reset_mid_request(server.url)
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")
