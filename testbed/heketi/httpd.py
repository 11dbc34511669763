"""The Heketi test server's HTTP side: the listener, one handler thread per
connection, and answers written as Heketi's Go `net/http` writes them.

`Response` is what a route handler returns; `HTTPServer` hands each request to
an `App` (the server) and records it. A dropped answer resets the connection
(RST, no bytes), as a crashed or cut-off server would.
"""

import contextlib
import json
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from provisioner.log import get_logger

_log = get_logger("heketi-test-server")

#: Bodies larger than this are refused (413) before they are read.
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it. `status` 0 = connection dropped."""

    method: str
    path: str
    status: int
    duration: float
    time: float


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def text(cls, status: int, message: str) -> "Response":
        """Go's http.Error: plain text ending in a newline."""
        return cls(
            status,
            (message + "\n").encode(),
            {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
        )

    @classmethod
    def json(cls, payload: Any) -> "Response":
        return cls(
            200,
            (json.dumps(payload) + "\n").encode(),
            {"Content-Type": "application/json; charset=UTF-8"},
        )

    @classmethod
    def redirect(cls, status: int, location: str, reason: str) -> "Response":
        body = f'<a href="{location}">{reason}</a>.\n\n'.encode()
        return cls(status, body, {"Location": location, "Content-Type": "text/html; charset=utf-8"})


class App(Protocol):
    """What the HTTP side serves: one answer per request, and a log of them."""

    def handle(
        self, method: str, path: str, authorization: str | None, body: bytes
    ) -> Response: ...

    def record(self, record: RequestRecord) -> None: ...


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("heketi_test_server_connection_error", client=str(client_address))

    def close_connections(self) -> None:
        with self.connections_lock:
            for sock in list(self.connections):
                _abort(sock)
            self.connections.clear()


def _abort(sock: socket.socket) -> None:
    """Reset the connection (RST, no answer), as a crashed or cut-off server would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "heketi-test-server"
    timeout = 30  # idle keep-alive connections are closed after this
    server: HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle plus the
        # client's delayed ACK add ~40 ms to every answer.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                return  # a client that does not trust us, or a port scan
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError):
            return  # the client went away; nothing to answer

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's per-request stderr lines; the request log records them."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        started, wall = time.monotonic(), time.time()
        path = urlsplit(self.path).path or "/"
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._write(Response.text(413, "request body too large"))
            return
        body = self.rfile.read(length) if length else b""
        response = self.server.app.handle(
            self.command, path, self.headers.get("Authorization"), body
        )
        if response.drop:
            self._record(started, wall, path, 0)
            self.close_connection = True
            _abort(self.connection)
            return
        # Recorded before the answer goes out, so a test that got its answer sees the record.
        self._record(started, wall, path, response.status)
        self._write(response)

    def _record(self, started: float, wall: float, path: str, status: int) -> None:
        duration = time.monotonic() - started
        self.server.app.record(RequestRecord(self.command, path, status, duration, wall))

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)
