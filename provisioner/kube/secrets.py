"""Heketi keys from Secrets (type kubernetes.io/glusterfs, data key `key`).

A Secret is read through the API (not watched: watching every Secret in the
cluster would need list/watch RBAC on all Secrets and hold them all in memory)
and cached for a short TTL, so a burst of claims of one class costs one GET, and
a rotated key is picked up within the TTL. `invalidate` drops an entry at once,
e.g. after Heketi rejected the key. The key never appears in a message or log.
"""

import base64
import binascii
import threading
import time
from collections.abc import Callable
from typing import Final

from provisioner import errors
from provisioner.kube.api import KubeApi, KubeForbidden, KubeNotFound, path_for

SECRET_TYPE: Final = "kubernetes.io/glusterfs"  # noqa: S105 - a type name, not a secret
SECRET_KEY: Final = "key"  # noqa: S105 - the data key name, not a secret
#: Long enough that a 500-claim burst reads the Secret once, short enough that a
#: fixed or rotated key is used within a minute.
DEFAULT_TTL_SECONDS: Final = 60.0


class SecretError(errors.FailedPrecondition):
    """The Secret holding the Heketi key is missing, unreadable or malformed."""


class SecretKeys:
    """TTL cache of Heketi keys by Secret (namespace, name). Thread-safe."""

    def __init__(
        self,
        api: KubeApi,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, str]] = {}
        self.reads = 0

    def key(self, namespace: str, name: str) -> str:
        """The Heketi key stored in Secret `namespace/name`."""
        cached = self._cached(namespace, name)
        if cached is not None:
            return cached
        with self._read_lock:  # one reader: concurrent workers wait for its answer
            cached = self._cached(namespace, name)
            if cached is not None:
                return cached
            value = self._read(namespace, name)
            with self._lock:
                self._cache[(namespace, name)] = (self._clock() + self._ttl, value)
            return value

    def _cached(self, namespace: str, name: str) -> str | None:
        with self._lock:
            cached = self._cache.get((namespace, name))
            return cached[1] if cached is not None and cached[0] > self._clock() else None

    def invalidate(self, namespace: str, name: str) -> None:
        with self._lock:
            self._cache.pop((namespace, name), None)

    def _read(self, namespace: str, name: str) -> str:
        self.reads += 1
        where = f"Secret {namespace}/{name}"
        try:
            secret = self._api.get(path_for(plural="secrets", namespace=namespace, name=name))
        except KubeNotFound as exc:
            raise SecretError(f"{where} (the Heketi key Secret) does not exist") from exc
        except KubeForbidden as exc:
            raise SecretError(
                f"the provisioner may not read {where}: grant it 'get' on Secrets there"
            ) from exc
        kind = secret.get("type", "")
        if kind != SECRET_TYPE:
            raise SecretError(
                f"{where} has type {kind or 'Opaque'!r}; the Heketi key Secret must have "
                f"type {SECRET_TYPE!r}"
            )
        encoded = (secret.get("data") or {}).get(SECRET_KEY)
        if not encoded:
            raise SecretError(f"{where} has no data key {SECRET_KEY!r} holding the Heketi key")
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SecretError(f"{where} data key {SECRET_KEY!r} is not valid base64 text") from exc
