"""The Heketi clients of one process, and what the clients of one Heketi share.

There is no process-wide state in `provisioner.heketi`: whoever runs the process
(the controller, the node plugin's Controller service, the audit) makes one
`HeketiClients`, injects it wherever clients are needed, and closes it at the end.

It hands out one client per connection config. Clients of one Heketi URL share
its volume id → name map, its operation limit (per URL and `max_inflight`: a
client asking for another size gets its own rather than inheriting whichever
came first) and its pace (per URL and `poll_initial`, for the same reason).
A config that differs from a held one only in its key (the Secret's key was
rotated) replaces that client, whose session is closed at once; what no
remaining client uses (name map, limit, pace) goes with its last client.
"""

import dataclasses
import threading
from collections.abc import Callable

from provisioner.heketi.client import HeketiClient
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.name_cache import VolumeNameMap
from provisioner.heketi.pacing import OperationPace
from provisioner.heketi.session import HeketiSession, RequestObserver, new_session


class HeketiClients:
    """One client per Heketi connection config, for the life of the owner. Thread-safe.

    Call it with a config to get that config's client (made on first use).
    """

    def __init__(
        self,
        *,
        observer: RequestObserver | None = None,
        sessions: Callable[[HeketiConfig], HeketiSession] | None = None,
    ) -> None:
        """`observer` sees every request of the sessions made here; `sessions`, when
        given, makes each client's session instead (e.g. one that records requests)."""
        self._observer = observer
        self._sessions = sessions
        self._lock = threading.Lock()
        self._clients: dict[HeketiConfig, HeketiClient] = {}
        self._limits: dict[tuple[str, int], threading.BoundedSemaphore] = {}
        self._paces: dict[tuple[str, float], OperationPace] = {}
        self._names: dict[str, VolumeNameMap] = {}

    def __call__(self, config: HeketiConfig) -> HeketiClient:
        with self._lock:
            client = self._clients.get(config)
            if client is not None:
                return client
            client = HeketiClient(
                config,
                session=self._session(config),
                names=self._names.setdefault(config.base_url, VolumeNameMap()),
                limit=self._limit(config),
                pace=self._pace(config),
            )
            self._clients[config] = client
            for stale in [c for c in self._clients if _rotated(c, config)]:
                self._drop(stale)
            return client

    def close(self) -> None:
        """Close every client's session and forget everything."""
        with self._lock:
            for config in list(self._clients):
                self._drop(config)

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def __contains__(self, config: object) -> bool:
        with self._lock:
            return config in self._clients

    def _session(self, config: HeketiConfig) -> HeketiSession:
        if self._sessions is not None:
            return self._sessions(config)
        return new_session(config, observer=self._observer)

    def _limit(self, config: HeketiConfig) -> threading.BoundedSemaphore:
        limit = self._limits.get(_limit_key(config))
        if limit is None:
            limit = self._limits[_limit_key(config)] = threading.BoundedSemaphore(
                config.max_inflight
            )
        return limit

    def _pace(self, config: HeketiConfig) -> OperationPace:
        pace = self._paces.get(_pace_key(config))
        if pace is None:
            pace = self._paces[_pace_key(config)] = OperationPace(config.poll_initial)
        return pace

    def _drop(self, config: HeketiConfig) -> None:
        client = self._clients.pop(config, None)
        if client is None:
            return
        client.close()
        if _limit_key(config) not in {_limit_key(c) for c in self._clients}:
            del self._limits[_limit_key(config)]
        if _pace_key(config) not in {_pace_key(c) for c in self._clients}:
            del self._paces[_pace_key(config)]
        if config.base_url not in {c.base_url for c in self._clients}:
            self._names.pop(config.base_url).clear()


def _limit_key(config: HeketiConfig) -> tuple[str, int]:
    return (config.base_url, config.max_inflight)


def _pace_key(config: HeketiConfig) -> tuple[str, float]:
    return (config.base_url, config.poll_initial)


def _rotated(held: HeketiConfig, new: HeketiConfig) -> bool:
    """`held` is `new` but for its key: the key was rotated and `held` is stale."""
    return held.key != new.key and dataclasses.replace(held, key=new.key) == new
