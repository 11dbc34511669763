"""Heketi REST client.

What callers can rely on (the provisioning core builds its idempotency on it):

* Every method either returns a result that reflects Heketi's state, or raises
  a `HeketiError` subclass. Nothing is retried behind the caller's back except
  where retrying cannot change the outcome (see `transport`).
* `create_volume` returns only once the volume exists and is complete. It
  raises `HeketiOutcomeUnknown` when it cannot tell whether the volume was
  created: the answer to the POST was lost, the queue entry vanished (already
  read, or Heketi restarted), Heketi stopped answering while the operation
  ran, or `operation_deadline` passed. The caller then looks the name up
  (`find_volume_by_name`); if it is absent, creating again is safe, and a
  `HeketiNameInUse` answer means the first attempt is still running (Heketi
  reserves the name at once but lists the volume only when complete).
  Any other error means no volume was created (Heketi rolls back failures).
* `clone_volume` (`POST /volumes/{id}/clone`, Heketi's VolumeClone) likewise.
* `expand_volume` raises `HeketiOutcomeUnknown` in the same cases; re-read the
  volume's size before expanding again. It is never resent automatically. Heketi
  accepts a second expand while the first runs and updates the size only at the
  end, so when the error carries a `queue_path` (the expand was accepted), ask
  `poll_expand` how it ended before expanding again.
* `delete_volume` may be resent after a lost answer; the resend then reports
  `HeketiNotFound` (gone: success for the caller) or `HeketiConflict` (the
  first delete is still running).
* Async operations hold one slot of the client's operation limit (`max_inflight`,
  default 8 = Heketi's `max_inflight_operations`) from the POST/DELETE until the
  final queue answer. Reads are not limited, except that one call reads at most
  `max_inflight` volumes at a time. A client made on its own has its own limit; the
  clients `registry.HeketiClients` hands out share one per URL.
* Only routes of Heketi v10.4.1's route table are called (docs/heketi.md lists
  them with the handler each one reaches; a test walks the whole client).
"""

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.errors import (
    HeketiBusy,
    HeketiError,
    HeketiInvalidRequest,
    HeketiNotFound,
    HeketiOperationFailed,
    HeketiOutcomeUnknown,
    HeketiUnavailable,
)
from provisioner.heketi.name_cache import VolumeIdentity, VolumeNameMap, identity, read_all
from provisioner.heketi.pacing import OperationPace
from provisioner.heketi.session import HeketiSession, new_session
from provisioner.heketi.topology import TopologyReads, checked_id
from provisioner.heketi.transport import Exchange, Transport, error_for, failure_kind
from provisioner.heketi.types import Volume, VolumeCreateRequest
from provisioner.log import get_logger

__all__ = ["HeketiClient", "HeketiConfig"]

_log = get_logger("heketi")
#: Fields of Heketi's OperationsInfo (pkg/glusterfs/api/types.go) that count operations
#: which may still change a volume.
_OP_COUNTS = ("in_flight", "total")


class HeketiClient(TopologyReads):
    """Talks to one Heketi server. Thread-safe; a process shares one per config through
    `registry.HeketiClients`, which gives the clients of one URL one `names` (its id →
    name map), `limit` (operation limit) and `pace` (poll pace); without them the client
    keeps its own. A `session` given here sees every request through its `send`.
    """

    def __init__(
        self,
        config: HeketiConfig,
        *,
        session: HeketiSession | None = None,
        names: VolumeNameMap | None = None,
        limit: threading.BoundedSemaphore | None = None,
        pace: OperationPace | None = None,
    ) -> None:
        self._config = config
        self._session = session or new_session(config)
        self._transport = Transport(config, self._session)
        self._limit = limit or threading.BoundedSemaphore(config.max_inflight)
        self._pace = pace or OperationPace(config.poll_initial)
        self._names = names if names is not None else VolumeNameMap()

    @property
    def config(self) -> HeketiConfig:
        return self._config

    # -- reads ---------------------------------------------------------------

    def hello(self) -> None:
        """Check that Heketi answers (`GET /hello`)."""
        self._get("/hello", expect_json=False)

    def operations_pending(self) -> int:
        """How many operations Heketi has pending (running, or left in its database by
        a restart until they are cleaned up), from `GET /operations` (admin only):
        `in_flight` counts those running in this Heketi process, `total` those its
        database holds; the larger of the two."""
        info = self._get("/operations")
        counts = [info.get(key) if isinstance(info, dict) else None for key in _OP_COUNTS]
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise HeketiOperationFailed(
                "Heketi answered GET /operations without operation counts", status=200
            )
        return max(int(c) for c in counts if c is not None)

    def get_volume(self, volume_id: str) -> Volume:
        """The volume; `HeketiNotFound` when Heketi does not know the id."""
        return self._parse_volume(self._get(f"/volumes/{checked_id(volume_id)}"))

    def get_volumes(self, volume_ids: Sequence[str]) -> list[Volume]:
        """The volumes with these ids, in order, read at most `max_inflight` at a time;
        ids Heketi no longer knows are left out."""
        ids = [checked_id(i) for i in volume_ids]
        found = read_all(ids, self._volume_or_none, workers=self._config.max_inflight)
        return [v for v in found if v is not None]

    def _volume_or_none(self, volume_id: str) -> Volume | None:
        try:
            return self.get_volume(volume_id)
        except HeketiNotFound:
            self._names.forget(volume_id)
            return None

    def list_volume_ids(self) -> list[str]:
        """Ids of the complete volumes (`GET /volumes`)."""
        return self._ids("/volumes", "volumes")

    def list_volumes(self) -> list[Volume]:
        """Every complete volume: `GET /volumes`, then each `GET /volumes/{id}`."""
        started = time.monotonic()
        ids = self.list_volume_ids()
        volumes = self.get_volumes(ids)
        self._names.install(ids, {v.id: identity(v) for v in volumes}, listed_at=started)
        return volumes

    def volume_identities(self) -> dict[str, VolumeIdentity]:
        """id → name and GID of every complete volume: one `GET /volumes`, plus a
        `GET /volumes/{id}` for each id not seen before (see `volume_names`)."""
        return self._identities()[0]

    def find_volume_by_name(self, name: str) -> Volume | None:
        """The complete volume called `name`, or None. A volume Heketi is still
        creating is not listed yet: creating it again then answers `HeketiNameInUse`."""
        identities, fetched = self._identities()
        matches: list[Volume] = []
        for volume_id in sorted(i for i, known in identities.items() if known.name == name):
            volume = fetched.get(volume_id) or self._volume_or_none(volume_id)
            if volume is not None and volume.name == name:
                matches.append(volume)
        if len(matches) > 1:
            _log.warning(
                "heketi_duplicate_volume_name", name=name, volume_ids=[v.id for v in matches]
            )
        return matches[0] if matches else None

    def _identities(self) -> tuple[dict[str, VolumeIdentity], dict[str, Volume]]:
        return self._names.refresh(list_ids=self.list_volume_ids, read=self.get_volumes)

    # -- operations ------------------------------------------------------------

    def create_volume(self, request: VolumeCreateRequest) -> Volume:
        """Create and wait for completion. See the module docstring for guarantees."""
        location = self._run("POST", "/volumes", body=request.to_json(), replay_safe=False)
        return self._made(location, "create")

    def clone_volume(self, volume_id: str, *, name: str) -> Volume:
        """Clone the volume as `name` (`POST /volumes/{id}/clone`) and wait; the same
        guarantees as `create_volume`; `HeketiNotFound` when the source does not exist."""
        path = f"/volumes/{checked_id(volume_id)}/clone"
        return self._made(self._run("POST", path, body={"name": name}, replay_safe=False), "clone")

    def _made(self, location: str | None, what: str) -> Volume:
        volume = self._volume_at(location, what)
        self._names.remember(volume.id, identity(volume))
        return volume

    def expand_volume(self, volume_id: str, *, add_gib: int) -> Volume:
        """Add `add_gib` GiB to the volume and wait for completion."""
        if add_gib < 1:
            raise HeketiInvalidRequest(f"expand size must be at least 1 GiB, got {add_gib}")
        path = f"/volumes/{checked_id(volume_id)}/expand"
        location = self._run("POST", path, body={"expand_size": add_gib}, replay_safe=False)
        return self._volume_at(location, "expand")

    def poll_expand(self, queue_path: str) -> Volume | None:
        """One look at an expand whose wait ended in `HeketiOutcomeUnknown(queue_path=…)`:
        None while Heketi still runs it, the grown volume once it finished; raises the
        operation's failure, or `HeketiOutcomeUnknown` without a queue path when Heketi
        no longer knows the entry (then the size Heketi reports is final)."""
        deadline = time.monotonic() + self._config.retry_budget
        answer = self._transport.request("GET", queue_path, replay_safe=True, deadline=deadline)
        if answer.status == 200:
            return None
        return self._volume_at(self._finished(answer, queue_path, "volume expand"), "expand")

    def delete_volume(self, volume_id: str) -> None:
        """Delete and wait; `HeketiNotFound` when the volume does not exist."""
        try:
            self._run("DELETE", f"/volumes/{checked_id(volume_id)}", body=None, replay_safe=True)
        finally:  # gone, going or unknown: the next lookup reads it again
            self._names.forget(volume_id)

    def close(self) -> None:
        self._session.close()

    # -- internals -------------------------------------------------------------

    def _get(self, path: str, *, expect_json: bool = True) -> Any:
        deadline = time.monotonic() + self._config.retry_budget
        answer = self._transport.request("GET", path, replay_safe=True, deadline=deadline)
        if answer.status != 200:
            raise error_for(answer, f"GET {path}")
        if not expect_json:
            return answer.text
        try:
            return answer.json()
        except ValueError:
            raise HeketiOperationFailed(
                f"Heketi answered GET {path} with invalid JSON", status=200
            ) from None

    def _ids(self, path: str, field: str) -> list[str]:
        ids = self._get(path)
        if not isinstance(ids, dict) or not isinstance(ids.get(field), list):
            raise HeketiOperationFailed(
                f"Heketi answered GET {path} without a list of {field}", status=200
            )
        return [str(i) for i in ids[field]]

    def _parse_volume(self, raw: Any) -> Volume:
        try:
            return Volume.from_json(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HeketiOperationFailed(f"Heketi returned a malformed volume: {exc!r}") from None

    def _volume_at(self, location: str | None, what: str) -> Volume:
        if location is None:
            raise HeketiOperationFailed(f"Heketi finished the volume {what} without a result")
        try:
            return self._parse_volume(self._get(location))
        except HeketiUnavailable as exc:
            raise HeketiOutcomeUnknown(
                f"the volume {what} finished but its result could not be read: {exc}",
                operation=f"GET {location}",
            ) from None

    def _run(self, method: str, path: str, *, body: Any, replay_safe: bool) -> str | None:
        """Start an async operation and follow it to the end; the result path or None."""
        deadline = time.monotonic() + self._config.operation_deadline
        with self._slot(deadline, f"{method} {path}"):
            answer = self._transport.request(
                method, path, body=body, replay_safe=replay_safe, deadline=deadline
            )
            if answer.status != 202:
                raise error_for(answer, f"{method} {path}")
            location = _path_of(answer.headers.get("Location"))
            if location is None:
                raise HeketiOperationFailed(
                    f"Heketi accepted {method} {path} without a Location header", status=202
                )
            return self._poll(location, deadline, f"{method} {path}")

    @contextmanager
    def _slot(self, deadline: float, operation: str) -> Iterator[None]:
        if not self._limit.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise HeketiBusy(
                f"{self._config.max_inflight} operations on {self._config.base_url} were already "
                "running in this process until the operation deadline",
                operation=operation,
            )
        try:
            yield
        finally:
            self._limit.release()

    def _poll(self, queue_path: str, deadline: float, operation: str) -> str | None:
        pace = self._pace
        accepted = time.monotonic()
        interval = pace.first_wait()
        polls = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HeketiOutcomeUnknown(
                    f"Heketi did not finish {operation} within "
                    f"{self._config.operation_deadline:g} s",
                    operation=operation,
                    queue_path=queue_path,
                )
            time.sleep(min(interval, remaining))
            answer = self._poll_once(queue_path, deadline, operation)
            polls += 1
            if answer.status == 200:
                interval = pace.next_wait(
                    interval,
                    after_first=polls == 1,
                    factor=self._config.poll_factor,
                    cap=self._config.poll_max,
                )
                continue
            pace.record(time.monotonic() - accepted, done_at_first_poll=polls == 1)
            return self._finished(answer, queue_path, operation)

    def _poll_once(self, queue_path: str, deadline: float, operation: str) -> Exchange:
        try:
            return self._transport.request("GET", queue_path, replay_safe=True, deadline=deadline)
        except (HeketiUnavailable, HeketiBusy) as exc:
            raise HeketiOutcomeUnknown(
                f"lost track of {operation} while it ran: {exc}",
                operation=operation,
                queue_path=queue_path,
            ) from None

    def _finished(self, answer: Exchange, queue_path: str, operation: str) -> str | None:
        if answer.status == 303:
            location = _path_of(answer.headers.get("Location"))
            if location is None:
                raise HeketiOperationFailed(f"Heketi redirected {operation} without a Location")
            return location
        if answer.status == 204:
            return None
        if answer.status == 404:
            raise HeketiOutcomeUnknown(
                f"Heketi no longer knows {queue_path} for {operation} (answer already read, or "
                "Heketi restarted); look the volume up to learn the outcome",
                status=404,
                operation=operation,
            )
        if answer.status == 500:
            text = answer.text.strip() or "operation failed without a message"
            raise failure_kind(text)(text, status=500, operation=operation)
        error: HeketiError = error_for(answer, f"GET {queue_path}")
        raise error


def _path_of(location: str | None) -> str | None:
    if not location:
        return None
    path = urlsplit(location).path
    return path or None
