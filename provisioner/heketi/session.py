"""The HTTP session of one Heketi client, and how requests on it are observed."""

import re
import time
from typing import Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from provisioner.heketi.config import HeketiConfig

#: Path segments kept in a route label: Heketi's route words are lowercase letters
#: (`volumes`, `expand`, `queue`, …); anything else is an id and becomes `{id}`.
_ROUTE_WORD = re.compile(r"[a-z]+")


class RequestObserver(Protocol):
    """Receives one call per HTTP request a client sends (metrics)."""

    def observe(self, *, server: str, method: str, route: str, status: str, seconds: float) -> None:
        """`server`: `scheme://host:port` of the Heketi asked; `status`: the HTTP code,
        or `error` when no answer came."""


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


class ObservedSession(requests.Session):
    """A session that reports every request it sends to an observer."""

    def __init__(self, observer: RequestObserver) -> None:
        super().__init__()
        self._observer = observer

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        method = request.method or "GET"
        route = route_of(request.path_url)
        server = server_of(request.url or "")
        start = time.perf_counter()
        status = "error"
        try:
            response = super().send(request, **kwargs)  # type: ignore[arg-type]
            status = str(response.status_code)
            return response
        finally:
            seconds = time.perf_counter() - start
            self._observer.observe(
                server=server, method=method, route=route, status=status, seconds=seconds
            )


def new_session(
    config: HeketiConfig, *, observer: RequestObserver | None = None
) -> requests.Session:
    """A session for one Heketi: its own connection pool, no environment settings."""
    session = ObservedSession(observer) if observer is not None else requests.Session()
    adapter = HTTPAdapter(
        pool_connections=1, pool_maxsize=max(10, 2 * config.max_inflight), max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # no proxy/netrc/CA variables: the Heketi URL is explicit
    return session
