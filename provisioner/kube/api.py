"""Kubernetes API calls on plain JSON dicts.

The generated model classes of the `kubernetes` client cost far more CPU and
memory than the work this controller does per object (10,000 PVC/PV pairs must
sync in seconds), so every call skips them. It also skips the client's request
pipeline (`param_serialize` → `call_api` → `RESTClientObject.request`), which
cost about a third of a request's CPU: each request goes straight to the
client's own urllib3 pool manager (the one `ApiClient` built from the kubeconfig
or the service account: its TLS verification, client certificate, proxy and
retries are used as they are), with the client's default headers and its
`BearerToken` auth setting read per request (so a rotated service-account
token or an exec plugin's refresh hook is honoured as by the client itself).
Bodies are encoded and answers decoded with orjson (list pages and watch events
are most of the controller's start-up CPU at 50,000 pairs; orjson decodes them
in about half the time of `json`). Non-2xx answers become the typed errors
below; the response body's `message` is kept, never a header.
"""

import contextlib
import functools
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlencode

import orjson
import urllib3
from kubernetes.client import ApiClient

from provisioner import errors

JSON: Final = "application/json"
MERGE_PATCH: Final = "application/merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"

#: Per-request timeout (connect, read) in seconds for ordinary calls: the API
#: server answers in milliseconds; 30 s only ends calls to a hung server.
DEFAULT_TIMEOUT: Final = (10.0, 30.0)

Obj = dict[str, Any]


class KubeError(errors.ProvisionerError):
    """The API server refused or failed a request."""

    def __init__(self, status: int, message: str, *, reason: str = "") -> None:
        super().__init__(f"Kubernetes API: {message} (HTTP {status})" if status else message)
        self.status = status
        self.reason = reason


class KubeNotFound(KubeError, errors.NotFound):
    """404: the object does not exist."""


class KubeConflict(KubeError, errors.Aborted):
    """409 on update/patch: the object changed since it was read (resourceVersion)."""


class KubeAlreadyExists(KubeError, errors.AlreadyExists):
    """409 on create: an object with this name exists."""


class KubeGone(KubeError, errors.FailedPrecondition):
    """410: the resourceVersion is too old (compacted); relist."""


class KubeInvalid(KubeError, errors.InvalidArgument):
    """400/422: the request was rejected as invalid."""


class KubeForbidden(KubeError, errors.PermissionDenied):
    """401/403: missing credentials or RBAC permission."""


class KubeUnavailable(KubeError, errors.Unavailable):
    """Connection failure, timeout, 429 or 5xx: try again later."""


def _error_for(status: int, body: bytes, *, method: str) -> KubeError:
    message, reason = _status_message(body)
    message = message or f"{method} failed"
    if status == 404:
        return KubeNotFound(status, message, reason=reason)
    if status == 409:
        exists = reason == "AlreadyExists" or (method == "POST" and reason != "Conflict")
        cls: type[KubeError] = KubeAlreadyExists if exists else KubeConflict
        return cls(status, message, reason=reason)
    if status == 410:
        return KubeGone(status, message, reason=reason)
    if status in (400, 422):
        return KubeInvalid(status, message, reason=reason)
    if status in (401, 403):
        return KubeForbidden(status, message, reason=reason)
    if status == 429 or status >= 500:
        return KubeUnavailable(status, message, reason=reason)
    return KubeError(status, message, reason=reason)


def _status_message(body: bytes) -> tuple[str, str]:
    if not body:
        return "", ""
    try:
        decoded = orjson.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", errors="replace"), ""
    if not isinstance(decoded, dict):
        return "", ""
    return str(decoded.get("message", "")), str(decoded.get("reason", ""))


def path_for(
    *,
    group: str = "",
    version: str = "v1",
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection or object, e.g. /api/v1/namespaces/ns/pods/p."""
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace is not None:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name is not None:
        base += f"/{quote(name, safe='')}"
    if subresource is not None:
        base += f"/{subresource}"
    return base


class KubeApi:
    """Minimal raw-JSON API: get / list / create / patch / update / delete / watch."""

    def __init__(self, api_client: ApiClient, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT):
        self._client = api_client
        self._timeout = timeout
        self._host = api_client.configuration.host
        self._pool: urllib3.PoolManager = api_client.rest_client.pool_manager

    @property
    def api_client(self) -> ApiClient:
        return self._client

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = JSON,
    ) -> Obj:
        """One call; returns the decoded JSON object (empty dict for an empty body)."""
        response = self._send(
            method, path, query=query, body=body, content_type=content_type, timeout=self._timeout
        )
        try:
            data = response.data
        finally:
            response.release_conn()
        if not 200 <= response.status <= 299:
            raise _error_for(response.status, data, method=method)
        decoded: Obj = orjson.loads(data) if data else {}
        return decoded

    def get(self, path: str) -> Obj:
        return self.request("GET", path)

    def list(self, path: str, *, query: Sequence[tuple[str, str]] = ()) -> Obj:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: Mapping[str, Any]) -> Obj:
        return self.request("POST", path, body=body)

    def update(self, path: str, body: Mapping[str, Any]) -> Obj:
        return self.request("PUT", path, body=body)

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> Obj:
        return self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    def json_patch(self, path: str, operations: Sequence[Mapping[str, Any]]) -> Obj:
        return self.request("PATCH", path, body=list(operations), content_type=JSON_PATCH)

    def delete(self, path: str, *, body: Mapping[str, Any] | None = None) -> Obj:
        return self.request("DELETE", path, body=body)

    def watch(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, str]],
        read_timeout: float,
    ) -> "WatchStream":
        """Open a watch; iterate the returned stream for events until the server ends it.

        Raises KubeGone when the resourceVersion is too old (HTTP 410 at the start);
        iteration raises KubeUnavailable when the connection fails or drops.
        """
        params = [*query, ("watch", "true")]
        response = self._send(
            "GET",
            path,
            query=params,
            body=None,
            content_type=JSON,
            timeout=(self._timeout[0], read_timeout),
        )
        if not 200 <= response.status <= 299:
            try:
                raise _error_for(response.status, response.data, method="GET")
            finally:
                response.release_conn()
        return WatchStream(response, path=path)

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]],
        body: Any,
        content_type: str,
        timeout: tuple[float, float],
    ) -> urllib3.BaseHTTPResponse:
        url = self._host + path
        if query:
            url += "?" + urlencode(query, safe="/", quote_via=quote)
        try:
            return self._pool.urlopen(
                method,
                url,
                body=None if body is None else orjson.dumps(body),
                headers=self._headers(content_type),
                timeout=_timeouts(timeout),
                preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(0, f"{method} {path}: {type(exc).__name__}") from exc

    def _headers(self, content_type: str) -> dict[str, str]:
        """What the client's `param_serialize` would send: Accept and Content-Type, its
        default headers (User-Agent), its cookie if one is set, and the bearer token of
        its `BearerToken` auth setting, read now (a refresh hook may renew it)."""
        headers = {"Accept": JSON, "Content-Type": content_type, **self._client.default_headers}
        if self._client.cookie:
            headers["Cookie"] = self._client.cookie
        auth = self._client.configuration.auth_settings().get("BearerToken")
        if auth is not None and auth["value"]:
            headers[auth["key"]] = auth["value"]
        return headers


@functools.lru_cache(maxsize=8)
def _timeouts(timeout: tuple[float, float]) -> urllib3.Timeout:
    """The urllib3 form of a (connect, read) pair, built once per distinct pair."""
    return urllib3.Timeout(connect=timeout[0], read=timeout[1])


class WatchStream:
    """An open watch: iterate for event dicts; `close()` may be called from any thread."""

    def __init__(self, response: urllib3.BaseHTTPResponse, *, path: str) -> None:
        self._response = response
        self._path = path
        self._closed = False

    def __iter__(self) -> Iterator[Obj]:
        try:
            yield from _events(self._response)
        except Exception as exc:
            if self._closed:
                return  # closed by `close()` from another thread: any read error is ours
            if not isinstance(exc, urllib3.exceptions.HTTPError | OSError | ValueError):
                raise
            message = f"watch of {self._path} dropped: {type(exc).__name__}"
            raise KubeUnavailable(0, message) from exc
        finally:
            self._response.release_conn()

    def close(self) -> None:
        """End the stream now, unblocking a reader that waits for the next event."""
        self._closed = True
        connection = getattr(self._response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()


def _events(response: urllib3.BaseHTTPResponse) -> Iterator[Obj]:
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.strip():
                event: Obj = orjson.loads(line)
                yield event
    if pending.strip():
        tail: Obj = orjson.loads(pending)
        yield tail
