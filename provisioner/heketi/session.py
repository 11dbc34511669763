"""The HTTP connections of one Heketi client, and how requests on them are observed.

A `HeketiSession` keeps the connections to one Heketi URL alive and reuses them
(`http.client` connections, one per request in flight, at most twice
`max_inflight` kept idle; an idle one the server has closed is noticed before it
is reused, so a request is never sent on a dead connection). For `https` every
connection verifies Heketi's certificate and host name against the config's CA
bundle (a file, or a directory of hashed certificates) or, without one, the
system's trust store. Nothing is read from the environment (no proxy, netrc or
CA variables: the Heketi URL is explicit), no request is retried or redirected
here (`transport` decides), and no cookie is kept (Heketi sets none).

What went wrong is one of three exceptions: `NotSent` (could not connect: the
request certainly did not reach Heketi), `MaybeSent` (connected, but no complete
answer came back) and `TlsFailed` (the TLS handshake or its trust store failed).

Why not `requests` or urllib3: they spent 0.53 and 0.38 ms of CPU per Heketi
request on features this client never uses (settings merges, cookie jars,
response objects, retry and redirect machinery); this path costs about 0.2 ms.
See docs/performance.md.
"""

import http.client
import itertools
import os
import re
import select
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

import certifi

from provisioner.heketi.config import HeketiConfig

#: Path segments kept in a route label: Heketi's route words are lowercase letters
#: (`volumes`, `expand`, `queue`, …); anything else is an id and becomes `{id}`.
_ROUTE_WORD = re.compile(r"[a-z]+")
#: The client's name in every request (Heketi logs it).
USER_AGENT: Final = "glusterfs-provisioner"
#: Idle connections kept per Heketi at least (the operation limit's default is 8).
_MIN_KEPT: Final = 10

#: (connect, read) timeouts of one request, in seconds.
Timeouts = tuple[float, float]


class NotSent(Exception):
    """Could not connect: the request certainly did not reach Heketi."""


class MaybeSent(Exception):
    """The request may have reached Heketi but no complete answer came back."""


class TlsFailed(Exception):
    """The TLS handshake failed (untrusted certificate, wrong host) or the CA bundle
    could not be loaded: nothing was sent."""


class RequestObserver(Protocol):
    """Receives one call per HTTP request a client sends (metrics)."""

    def observe(self, *, server: str, method: str, route: str, status: str, seconds: float) -> None:
        """`server`: `scheme://host:port` of the Heketi asked; `status`: the HTTP code,
        or `error` when no answer came."""


@dataclass(frozen=True)
class Request:
    """One HTTP request to Heketi: `path` is the request target (from `/`)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes | None = None


@dataclass(frozen=True)
class Answer:
    """Heketi's complete answer (status, headers as sent, body)."""

    status: int
    headers: dict[str, str]
    body: bytes


class HeketiSession:
    """Keep-alive connections to one Heketi. Thread-safe. `send` is the one place a
    request leaves the client (a subclass may record or count them)."""

    def __init__(self, config: HeketiConfig) -> None:
        self.server = server_of(config.base_url)
        parts = urlsplit(config.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._trust = (config.ca_bundle or system_trust_store()) if self._https else None
        self._context: ssl.SSLContext | None = None
        self._kept = max(_MIN_KEPT, 2 * config.max_inflight)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._opened = itertools.count()
        self._connections_opened = 0

    def send(self, request: Request, *, timeout: Timeouts) -> Answer:
        connection = self._reused() or self._connect(timeout[0])
        try:
            answer, reusable = _exchange(connection, request, timeout[1])
        except BaseException:
            connection.close()
            raise
        if reusable:
            self._keep(connection)
        else:
            connection.close()
        return answer

    @property
    def connections_opened(self) -> int:
        """How many connections this session has opened so far (reuse keeps it low)."""
        return self._connections_opened

    def close(self) -> None:
        """Close the idle connections (a request sent later opens a new one)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _reused(self) -> http.client.HTTPConnection | None:
        """An idle connection the server has not closed, if there is one."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            if not _dropped(connection):
                return connection
            connection.close()

    def _keep(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._kept:
                self._idle.append(connection)
                return
        connection.close()

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._tls_context()
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            connection.connect()
        except ssl.SSLError as exc:
            connection.close()
            raise TlsFailed(str(exc)) from None
        except TimeoutError:
            connection.close()
            raise NotSent("connect timed out") from None
        except OSError as exc:
            connection.close()
            raise NotSent(f"connection failed ({exc.strerror or exc})") from None
        self._connections_opened = next(self._opened) + 1
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        """Verifies the certificate and the host name; loaded once, at first use."""
        with self._lock:
            if self._context is None:
                self._context = _verifying_context(self._trust or certifi.where())
            return self._context


class ObservedSession(HeketiSession):
    """A session that reports every request it sends to an observer."""

    def __init__(self, config: HeketiConfig, observer: RequestObserver) -> None:
        super().__init__(config)
        self._observer = observer

    def send(self, request: Request, *, timeout: Timeouts) -> Answer:
        start = time.perf_counter()
        status = "error"
        try:
            answer = super().send(request, timeout=timeout)
            status = str(answer.status)
            return answer
        finally:
            self._observer.observe(
                server=self.server,
                method=request.method,
                route=route_of(request.path),
                status=status,
                seconds=time.perf_counter() - start,
            )


def new_session(config: HeketiConfig, *, observer: RequestObserver | None = None) -> HeketiSession:
    """A session for one Heketi: its own connection pool, observed when `observer` is given."""
    return ObservedSession(config, observer) if observer is not None else HeketiSession(config)


def route_of(path_url: str) -> str:
    """`/volumes/0f3c…/expand?x` → `/volumes/{id}/expand`: a label of few values."""
    path = urlsplit(path_url).path
    segments = [s if _ROUTE_WORD.fullmatch(s) else "{id}" for s in path.split("/") if s]
    return "/" + "/".join(segments)


def server_of(url: str) -> str:
    """`https://user@heketi:8080/volumes` → `https://heketi:8080`: which Heketi, and
    nothing a user name or path could add to a label."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"


def system_trust_store() -> str | None:
    """The system's CA certificates: OpenSSL's default file or directory (which honour
    SSL_CERT_FILE / SSL_CERT_DIR), so CAs the administrator added are trusted. None
    only where the system has no CA store at all (then certifi's bundle is used)."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile:  # None unless the file exists
        return paths.cafile
    if paths.capath and os.path.isdir(paths.capath):
        return paths.capath
    return None


def _exchange(
    connection: http.client.HTTPConnection, request: Request, read_timeout: float
) -> tuple[Answer, bool]:
    """Send `request` and read the whole answer; and whether the connection may be reused."""
    try:
        if connection.sock is not None:
            connection.sock.settimeout(read_timeout)
        connection.request(request.method, request.path, request.body, dict(request.headers))
        response = connection.getresponse()
        body = response.read()
    except TimeoutError:
        raise MaybeSent("no answer within the request timeout") from None
    except (OSError, http.client.HTTPException) as exc:
        raise MaybeSent(f"connection lost before a complete answer ({_why(exc)})") from None
    headers = dict(response.getheaders())
    return Answer(response.status, headers, body), not response.will_close


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server (or has unread bytes, which
    an idle HTTP connection must not): readable without blocking."""
    sock = connection.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _verifying_context(trust: str) -> ssl.SSLContext:
    """A client context that requires a certificate chaining to `trust` (a PEM file or
    a directory of hashed certificates) and naming the host."""
    try:
        if os.path.isdir(trust):
            return ssl.create_default_context(capath=trust)
        return ssl.create_default_context(cafile=trust)
    except ssl.SSLError as exc:
        raise TlsFailed(f"cannot load the CA bundle {trust!r}: {exc}") from None
    except OSError as exc:
        raise TlsFailed(f"cannot read the CA bundle {trust!r}: {exc.strerror or exc}") from None
