"""Raw HTTP helpers for the Heketi test server's contract tests (no client code)."""

import hashlib
import time
from typing import Any

import jwt
import requests

#: At least 32 bytes, so PyJWT does not warn about the key length.
ADMIN_KEY = "admin-key-for-contract-tests-0123456789"
USER_KEY = "user-key-for-contract-tests-0123456789ab"


def qsh(method: str, path: str) -> str:
    return hashlib.sha256(f"{method}&{path}".encode()).hexdigest()


def token(
    method: str, path: str, *, iss: str | None = "admin", key: str = ADMIN_KEY, **overrides: Any
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": iss, "iat": now, "exp": now + 300, "qsh": qsh(method, path)}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="HS256")


def call(
    url: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: bytes | None = None,
    authorization: str | None = "admin",
) -> requests.Response:
    """`authorization`: "admin"/"user" for a valid token of that role, None for no
    header, anything else is sent as the header value verbatim."""
    headers = {}
    if authorization == "admin":
        headers["Authorization"] = f"bearer {token(method, path)}"
    elif authorization == "user":
        headers["Authorization"] = f"bearer {token(method, path, iss='user', key=USER_KEY)}"
    elif authorization is not None:
        headers["Authorization"] = authorization
    return requests.request(
        method,
        url + path,
        json=body,
        data=raw_body,
        headers=headers,
        timeout=10,
        allow_redirects=False,
    )


def wait_done(url: str, location: str, *, timeout: float = 10.0) -> requests.Response:
    """Poll a queue entry until it stops answering 200 + X-Pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = call(url, "GET", location)
        if answer.status_code != 200:
            return answer
        time.sleep(0.01)
    raise AssertionError(f"{location} still pending after {timeout} s")
