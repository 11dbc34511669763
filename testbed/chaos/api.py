"""The soak's own Kubernetes API client: a user (kubectl) creating, growing, deleting.

It goes through the API port like any client, so it meets the injected faults
too; like a user it tries again on 5xx, 409, 429 and dropped connections, within
a deadline. Reads for the invariants do not come here: they read the store.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final

import requests

#: How long one change may keep being retried before the soak gives up on it.
CHANGE_DEADLINE_S: Final = 60.0
#: Seconds one HTTP request may take (slow answers last up to 1.5 s).
REQUEST_TIMEOUT_S: Final = 15.0
#: Pause between tries.
RETRY_PAUSE_S: Final = 0.2
_RETRIED: Final = frozenset({409, 429, 500, 502, 503, 504})

JSON = dict[str, Any]


class ChangeFailed(Exception):
    """A change the soak wanted could not be made within the deadline."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: JSON


class KubeUser:
    """Plain HTTP to the API test server, retrying what a user would retry."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._session = requests.Session()
        self._session.trust_env = False
        #: Tries that met an injected or real failure (counted for the report).
        self.retries = 0

    def close(self) -> None:
        self._session.close()

    def call(
        self,
        method: str,
        path: str,
        body: JSON | None = None,
        *,
        merge: bool = False,
        conflicts: bool = False,
    ) -> Answer:
        """The first answer that is not worth retrying; ChangeFailed after the deadline.

        `conflicts`: a 409 is an answer (the caller reads the object again), not retried.
        """
        deadline = time.monotonic() + CHANGE_DEADLINE_S
        content_type = "application/merge-patch+json" if merge else "application/json"
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = self._session.request(
                    method,
                    self._url + path,
                    data=None if body is None else json.dumps(body),
                    headers={"Content-Type": content_type},
                    timeout=REQUEST_TIMEOUT_S,
                )
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                # a create's 409 is AlreadyExists (an earlier try got through), not a race
                if response.status_code not in _RETRIED or (
                    response.status_code == 409 and (conflicts or method == "POST")
                ):
                    return Answer(response.status_code, _json(response))
                last = f"{response.status_code}"
            self.retries += 1
            time.sleep(RETRY_PAUSE_S)
        raise ChangeFailed(f"{method} {path}: still failing after {CHANGE_DEADLINE_S:g}s ({last})")


def _json(response: requests.Response) -> JSON:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def claims_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    return base if name is None else f"{base}/{name}"


def lease_path(namespace: str, name: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"


def class_path(name: str | None = None) -> str:
    base = "/apis/storage.k8s.io/v1/storageclasses"
    return base if name is None else f"{base}/{name}"


def secret_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return base if name is None else f"{base}/{name}"
