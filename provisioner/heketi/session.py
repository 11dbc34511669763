"""The HTTP connections of one Heketi client, and how requests on them are observed.

A `HeketiSession` is a urllib3 connection pool for one Heketi URL: connections
are kept alive and reused (one per request in flight, twice `max_inflight` kept),
and for `https` every connection verifies Heketi's certificate and host name
against the config's CA bundle (a file, or a directory of hashed certificates)
or, without one, the system's trust store. Nothing is read from the
environment (no proxy, netrc or CA variables: the Heketi URL is explicit), no
request is retried or redirected here (`transport` decides), and no cookie is
kept (Heketi sets none).

Why not `requests`: it spent about half of a Heketi request's client CPU
(0.5 ms) preparing the request, merging settings, copying cookie jars and
building its `Response`, for features this client never uses; see
docs/performance.md.
"""

import os
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

import certifi
import urllib3

from provisioner.heketi.config import HeketiConfig

#: Path segments kept in a route label: Heketi's route words are lowercase letters
#: (`volumes`, `expand`, `queue`, …); anything else is an id and becomes `{id}`.
_ROUTE_WORD = re.compile(r"[a-z]+")
#: The client's name in every request (Heketi logs it).
USER_AGENT: Final = "glusterfs-provisioner"
#: Connections kept per Heketi at least (the operation limit's default is 8).
_MIN_KEPT: Final = 10


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
    request leaves the client (a subclass may record or count them); it raises
    urllib3's errors (`transport` classifies them)."""

    def __init__(self, config: HeketiConfig) -> None:
        self.server = server_of(config.base_url)
        self._pool = _pool(config)

    def send(self, request: Request, *, timeout: urllib3.Timeout) -> Answer:
        response = self._pool.urlopen(
            request.method,
            request.path,
            body=request.body,
            headers=dict(request.headers),
            retries=False,
            redirect=False,
            timeout=timeout,
            preload_content=True,
        )
        return Answer(response.status, dict(response.headers), response.data)

    @property
    def connections_opened(self) -> int:
        """How many connections this session has opened so far (reuse keeps it low)."""
        return int(self._pool.num_connections)

    def close(self) -> None:
        """Close the kept connections (a request sent later opens a new one)."""
        self._pool.close()


class ObservedSession(HeketiSession):
    """A session that reports every request it sends to an observer."""

    def __init__(self, config: HeketiConfig, observer: RequestObserver) -> None:
        super().__init__(config)
        self._observer = observer

    def send(self, request: Request, *, timeout: urllib3.Timeout) -> Answer:
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


def _pool(config: HeketiConfig) -> urllib3.HTTPConnectionPool:
    parts = urlsplit(config.base_url)
    host = parts.hostname or ""
    kept = max(_MIN_KEPT, 2 * config.max_inflight)
    if parts.scheme != "https":  # plain HTTP never reads a CA file
        return urllib3.HTTPConnectionPool(host, parts.port or 80, maxsize=kept, block=False)
    trust = config.ca_bundle or system_trust_store() or certifi.where()
    directory = os.path.isdir(trust)
    return urllib3.HTTPSConnectionPool(
        host,
        parts.port or 443,
        maxsize=kept,
        block=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=None if directory else trust,
        ca_cert_dir=trust if directory else None,
    )
