"""One logical HTTP request to Heketi: fresh token, timeouts, bounded retries.

Retry rules (see docs/heketi.md):

* 429 and "could not connect" failures are retried for every request: Heketi
  did nothing with the request (its throttle answers 429 before any work).
* 502, 503, 504, read timeouts and connections dropped mid-answer are retried
  only for replay-safe requests (GET, DELETE). Heketi itself never answers
  502-504; a proxy in front of it does, and some (Envoy's "upstream reset
  before headers") answer 503 after forwarding the request. For a create or
  expand the request may have taken effect (a resent expand would grow the
  volume twice), so `HeketiOutcomeUnknown` is raised instead.
* 401/403 and every other answer are returned to the caller at once.

Attempts are capped by count and by time; each wait is exponential, capped and
jittered, and honours `Retry-After`.

Per-request cost: every Heketi request goes through the session's `send` (so a
session subclass such as the controller's metrics session sees each one) as a
`Request` built here from parts fixed per client (the headers and the signing key);
the session sends it on a kept-alive connection (see `session`).
"""

import email.utils
import json
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import jwt

from provisioner.heketi.auth import TokenSigner
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.errors import (
    HeketiAuthError,
    HeketiBusy,
    HeketiConflict,
    HeketiError,
    HeketiInvalidRequest,
    HeketiNameInUse,
    HeketiNoSpace,
    HeketiNotFound,
    HeketiOperationFailed,
    HeketiOutcomeUnknown,
    HeketiPlacementRefused,
    HeketiUnavailable,
)
from provisioner.heketi.session import (
    USER_AGENT,
    Answer,
    HeketiSession,
    MaybeSent,
    NotSent,
    Request,
    TlsFailed,
)
from provisioner.log import get_logger

_log = get_logger("heketi")

#: Answers that mean "Heketi did not act on this request; try again".
_ALWAYS_RETRIED = frozenset({429})
#: Gateway answers after which the request may or may not have reached Heketi.
_AMBIGUOUS_RETRIED = frozenset({502, 503, 504})
#: A create's name clash (Heketi's eligibleClusters), and a clone's: Heketi checks no
#: name for a clone, so glusterd's `snapshot clone` refuses it while the clone runs.
_NAME_IN_USE = re.compile(r"Volume name '[^']*' already in use|Volume with name:\S+ already exists")
#: Heketi's ErrConflict text. Heketi answers it with 500 ("Failed to set up volume
#: delete: ..."), not 409, when the volume or one of its bricks has a pending operation.
_CONFLICT = "The target exists, contains other items, or is in use."
#: Heketi v10.4.1's placement refusals (volume_entry_allocate.go generateDeviceFilter,
#: placer_arbiter.go discountBrickSize): the request itself can never be placed.
_PLACEMENT_REFUSED = re.compile(
    r"Invalid tag matching rule: |Average file size \(\d+\) is greater than Brick size"
)
_MAX_MESSAGE = 500
#: Characters a request path keeps as they are; any other is percent-encoded.
_PATH_SAFE: Final = "/%!$&'()*+,:;=@[]~-._"
#: The charset of an answer's Content-Type (Heketi, a Go server, answers UTF-8).
_CHARSET = re.compile(r";\s*charset=\"?([\w.:-]+)", re.IGNORECASE)


@dataclass(frozen=True)
class _Retry:
    """A retryable failure of one attempt, and Heketi's Retry-After (seconds) if any."""

    failure: HeketiError
    retry_after: float | None = None


@dataclass(frozen=True)
class Exchange:
    """A finished HTTP exchange (status, headers, body text)."""

    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class Transport:
    """Sends requests to one Heketi server with the retry policy of its config."""

    def __init__(self, config: HeketiConfig, session: HeketiSession) -> None:
        self._config = config
        self._session = session
        self._signer = _signer(config)
        self._headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        self._timeout = (config.connect_timeout, config.request_timeout)

    def request(
        self, method: str, path: str, *, body: Any = None, replay_safe: bool, deadline: float
    ) -> Exchange:
        """Send with retries until an answer that is not retryable, or give up."""
        operation = f"{method} {path}"
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(method, path, body, replay_safe)
            if isinstance(outcome, Exchange):
                return outcome
            failure = outcome.failure
            delay = self._delay(attempt, outcome.retry_after)
            if attempt >= self._config.retry_attempts or time.monotonic() + delay > deadline:
                raise failure
            _log.info(
                "heketi_retry",
                operation=operation,
                attempt=attempt,
                delay=round(delay, 2),
                error=str(failure),
            )
            time.sleep(delay)

    def _attempt(self, method: str, path: str, body: Any, replay_safe: bool) -> "Exchange | _Retry":
        """Heketi's answer, or why (and after how long) to try again."""
        operation = f"{method} {path}"
        try:
            answer = self._send(method, path, body)
        except NotSent as exc:
            return _Retry(HeketiUnavailable(self._unreachable(exc), operation=operation))
        except MaybeSent as exc:
            if not replay_safe:
                raise HeketiOutcomeUnknown(
                    f"{self._unreachable(exc)}; the request may have taken effect",
                    operation=operation,
                ) from None
            return _Retry(HeketiUnavailable(self._unreachable(exc), operation=operation))
        retryable = answer.status in _ALWAYS_RETRIED or (
            answer.status in _AMBIGUOUS_RETRIED and replay_safe
        )
        if answer.status in _AMBIGUOUS_RETRIED and not replay_safe:
            raise HeketiOutcomeUnknown(
                f"Heketi's gateway answered {answer.status} ({_text(answer)}); "
                "the request may have taken effect",
                status=answer.status,
                operation=operation,
            )
        if not retryable:
            return answer
        return _Retry(error_for(answer, operation), _retry_after(answer))

    def _send(self, method: str, path: str, body: Any) -> Exchange:
        try:
            answer = self._session.send(self._request(method, path, body), timeout=self._timeout)
        except TlsFailed as exc:
            raise self._tls_failure(exc, f"{method} {path}") from None
        return Exchange(answer.status, answer.headers, _decoded(answer))

    def _request(self, method: str, path: str, body: Any) -> Request:
        """The request for this call, from the parts fixed per client."""
        headers = self._headers.copy()
        if self._signer is not None:
            headers["Authorization"] = f"bearer {self._signer.token(method, path)}"
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        return Request(method, quote(path, safe=_PATH_SAFE), headers, data)

    def _tls_failure(self, exc: TlsFailed, operation: str) -> HeketiError:
        """A TLS failure; a CA bundle that cannot be read is the config's fault."""
        bundle = self._config.ca_bundle
        if bundle is not None and not os.access(bundle, os.R_OK):
            return HeketiInvalidRequest(
                f"cannot verify Heketi at {self._config.base_url}: CA bundle "
                f"{bundle!r} does not exist or cannot be read",
                operation=operation,
            )
        return HeketiUnavailable(
            f"TLS connection to Heketi at {self._config.base_url} failed "
            f"(check the CA bundle): {str(exc)[:_MAX_MESSAGE]}",
            operation=operation,
        )

    def _unreachable(self, exc: Exception) -> str:
        return f"cannot reach Heketi at {self._config.base_url}: {exc}"

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        step = min(self._config.retry_cap, self._config.retry_base * 2.0 ** (attempt - 1))
        delay = step / 2 + random.uniform(0, step / 2)  # noqa: S311 - jitter, not crypto
        return max(delay, retry_after or 0.0)


def _signer(config: HeketiConfig) -> TokenSigner | None:
    if config.key is None or not config.sends_token:
        return None
    try:
        return TokenSigner(user=config.user, key=config.key)
    except jwt.InvalidKeyError:
        raise HeketiInvalidRequest(
            "the Heketi key is a PEM or SSH public key or certificate; Heketi signs with a "
            "shared secret (its jwt admin/user key)"
        ) from None


def _decoded(answer: Answer) -> str:
    """The body as text, in the charset the answer names (else UTF-8)."""
    found = _CHARSET.search(answer.headers.get("Content-Type", ""))
    try:
        return answer.body.decode(found.group(1) if found else "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return answer.body.decode("utf-8", errors="replace")


def _retry_after(answer: Exchange) -> float | None:
    raw = answer.headers.get("Retry-After")
    if not raw:
        return None
    if raw.strip().isdigit():
        return float(raw.strip())
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - time.time())


def _text(answer: Exchange) -> str:
    text = answer.text.strip()
    return text[:_MAX_MESSAGE] if text else f"HTTP {answer.status}"


def error_for(answer: Exchange, operation: str) -> HeketiError:
    """The typed error for a failed answer, carrying Heketi's own message."""
    text = _text(answer)
    status = answer.status
    kind: type[HeketiError]
    if status in (400, 422):
        kind = HeketiInvalidRequest
    elif status in (401, 403):
        kind = HeketiAuthError
    elif status == 404:
        kind = HeketiNotFound
    elif status == 409:
        kind = HeketiConflict
    elif status == 429:
        kind = HeketiBusy
    elif status in (502, 503, 504):
        kind = HeketiUnavailable
    else:
        kind = failure_kind(text)
        if status != 500:
            text = f"unexpected HTTP {status} from Heketi: {text}"
    return kind(text, status=status, operation=operation)


def failure_kind(text: str) -> type[HeketiError]:
    """Classify a failed operation by Heketi's message (its API has no error codes)."""
    if "No space" in text:
        return HeketiNoSpace
    if _NAME_IN_USE.search(text):
        return HeketiNameInUse
    if _CONFLICT in text:
        return HeketiConflict
    if _PLACEMENT_REFUSED.search(text):
        return HeketiPlacementRefused
    return HeketiOperationFailed
