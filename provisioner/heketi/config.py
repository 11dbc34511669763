"""Connection settings for one Heketi server, and the retry/poll policy."""

import enum
import math
from dataclasses import dataclass, field, fields, replace
from typing import Final
from urllib.parse import urlsplit

from provisioner.heketi.errors import HeketiInvalidRequest

#: Connect timeout: a reachable Heketi accepts a TCP connection in milliseconds.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Read timeout of one HTTP exchange. Heketi answers every call synchronously
#: (long work goes through its queue), so 30 s means it is stuck, not busy.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Whole create/expand/delete including queue polling. Creating a replica-3
#: volume on a loaded cluster takes tens of seconds, rarely minutes.
DEFAULT_OPERATION_DEADLINE = 600.0
#: Heketi's own default `max_inflight_operations`: staying at or under it keeps
#: a burst of claims from turning into a storm of 429 answers.
DEFAULT_MAX_INFLIGHT = 8
#: Attempts per request for retryable failures (429, 502/503/504, connection
#: errors). With the base and cap below, 8 attempts span roughly 20-40 s:
#: enough to ride out a Heketi pod restart, short enough to surface an outage.
DEFAULT_RETRY_ATTEMPTS = 8
#: First backoff step; doubled per attempt, with jitter.
DEFAULT_RETRY_BASE = 0.5
#: Longest single backoff step (unless Heketi's Retry-After asks for more).
DEFAULT_RETRY_CAP = 10.0
#: Total time one request may spend retrying, whatever the attempt count.
DEFAULT_RETRY_BUDGET = 60.0
#: First queue poll interval until the client has seen how long this Heketi's
#: operations take (see pacing.py); then the first poll comes at that estimate.
DEFAULT_POLL_INITIAL = 0.1
#: Poll interval growth factor and ceiling (keeps a long create cheap to watch).
DEFAULT_POLL_FACTOR = 1.5
DEFAULT_POLL_MAX = 2.0


@dataclass(frozen=True)
class HeketiSettings:
    """How every Heketi server is talked to (timeouts, limits, retry and poll policy),
    whichever connection a class or volume names. Defaults: the constants above."""

    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    operation_deadline: float = DEFAULT_OPERATION_DEADLINE
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    retry_base: float = DEFAULT_RETRY_BASE
    retry_cap: float = DEFAULT_RETRY_CAP
    retry_budget: float = DEFAULT_RETRY_BUDGET
    poll_initial: float = DEFAULT_POLL_INITIAL
    poll_factor: float = DEFAULT_POLL_FACTOR
    poll_max: float = DEFAULT_POLL_MAX

    def __post_init__(self) -> None:
        for name in _POSITIVE:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise HeketiInvalidRequest(f"Heketi {name} must be a positive number, got {value}")
        if self.max_inflight < 1 or self.retry_attempts < 1:
            raise HeketiInvalidRequest("Heketi max_inflight and retry_attempts must be at least 1")
        if self.poll_factor < 1:
            raise HeketiInvalidRequest("Heketi poll_factor must be at least 1")

    def applied_to(self, config: "HeketiConfig") -> "HeketiConfig":
        """`config` (a connection) with these settings (`config` itself when it has them:
        this runs for every claim, and building a config costs more than comparing)."""
        values = {name: getattr(self, name) for name in _SETTING_NAMES}
        if all(getattr(config, name) == value for name, value in values.items()):
            return config
        return replace(config, **values)


_SETTING_NAMES: Final = tuple(f.name for f in fields(HeketiSettings))
_POSITIVE: Final = (
    "request_timeout",
    "operation_deadline",
    "connect_timeout",
    "retry_base",
    "retry_cap",
    "retry_budget",
    "poll_initial",
    "poll_max",
)


@dataclass(frozen=True, kw_only=True)
class HeketiConfig(HeketiSettings):
    """How to reach one Heketi server, and the settings to use. Hashable: the registry
    (`registry.HeketiClients`) holds one client per config.

    The key is excluded from `repr` so a logged config never leaks it.
    """

    url: str  # http(s)://host:port
    user: str = "admin"
    key: str | None = field(default=None, repr=False)
    auth_enabled: bool = True
    ca_bundle: str | None = None  # PEM file for https; None = system trust store

    def __post_init__(self) -> None:
        _check_url(self.url)
        if not self.user:
            raise HeketiInvalidRequest("Heketi user must not be empty")
        super().__post_init__()

    @property
    def base_url(self) -> str:
        """The URL without a trailing slash."""
        return self.url.rstrip("/")

    @property
    def sends_token(self) -> bool:
        """Whether requests carry `Authorization: bearer <JWT>`."""
        return self.auth_enabled and self.key is not None


class UrlProblem(enum.Enum):
    """What is wrong with a Heketi URL (each caller words it for where it came from)."""

    MALFORMED = "malformed"
    NOT_HTTP = "not an http(s) URL of a host"
    CREDENTIALS = "credentials"
    PATH = "a path, query or fragment"
    PORT = "an invalid port"


def url_problem(url: str) -> UrlProblem | None:
    """The one check of a Heketi URL: `http(s)://host[:port]`, nothing else (Heketi
    signs the request path, so it must be served at the root)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return UrlProblem.MALFORMED
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return UrlProblem.NOT_HTTP
    if "@" in parts.netloc:
        return UrlProblem.CREDENTIALS
    if parts.path.strip("/") or parts.query or parts.fragment:
        return UrlProblem.PATH
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    return None if port_ok else UrlProblem.PORT


def shown_url(url: str) -> str:
    """`url` as an error message may show it: everything between the scheme and the
    last `@` (a `user:password@`, even one with unescaped `/` or `:`) becomes `***`."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def _check_url(url: str) -> None:
    problem = url_problem(url)
    if problem is None:
        return
    shown = shown_url(url)
    if problem is UrlProblem.MALFORMED:
        raise HeketiInvalidRequest(f"Heketi URL {shown!r} is malformed")
    if problem in (UrlProblem.NOT_HTTP, UrlProblem.PORT):
        raise HeketiInvalidRequest(
            f"Heketi URL {shown!r} must look like http://host:port or https://host:port"
        )
    raise HeketiInvalidRequest(
        f"Heketi URL {shown!r} must not have a path, query or credentials: "
        "Heketi signs the request path, so it must be served at the root"
    )
