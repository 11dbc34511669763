"""The Kubernetes API and Heketi test servers, each in a child process of its own.

In a cluster the API server and Heketi do not share a CPU or a GIL with the
controller; here each test server runs in a spawned child process, and the
benchmark drives it through a pipe (`Host.call`). Timing, request counting and
store reads happen in the child, next to the server's data, so they cost no
HTTP round trips that would show up in the request log.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any

#: Seconds a child may take to import and start its server.
START_TIMEOUT = 60.0
#: Seconds one ordinary command to a child may take.
CALL_TIMEOUT = 120.0
#: Poll intervals of `wait_bound`: coarse while far from done, fine near the end,
#: so polling the store costs the server little but the end is seen within 20 ms.
COARSE_POLL = 0.1
FINE_POLL = 0.02


#: Verbs that change state in the Kubernetes API.
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class BenchError(Exception):
    """A benchmark could not run or a server misbehaved."""


def resource_of(path: str) -> str:
    """The resource (with subresource) a Kubernetes API request path names."""
    parts = [part for part in path.split("?", 1)[0].split("/") if part]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return "discovery"
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "discovery"
    return f"{rest[0]}/{rest[2]}" if len(rest) >= 3 else rest[0]


def heketi_route(path: str) -> str:
    """A Heketi request path with its ids replaced: `/volumes/{id}/expand`, `/queue/{id}`."""
    parts = [part for part in path.split("?", 1)[0].split("/") if part]
    return "/" + "/".join("{id}" if i == 1 else part for i, part in enumerate(parts))


class KubeOps:
    """Commands run next to the Kubernetes API test server."""

    def __init__(self, options: dict[str, Any]) -> None:
        from testbed.kube.server import KubeTestServer

        self.server = KubeTestServer(**options)

    def start(self) -> str:
        url: str = self.server.start()
        return url

    def stop(self) -> None:
        self.server.stop()

    def op_create(self, *, objs: list[dict[str, Any]]) -> int:
        for obj in objs:
            self.server.create(obj)
        return len(objs)

    def op_seed(self, *, objs: list[dict[str, Any]]) -> int:
        self.server.seed(objs)
        return len(objs)

    def op_list(self, *, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.server.list(plural, namespace)
        return items

    def op_claim_uids(self, *, namespace: str | None = None) -> dict[str, str]:
        """`namespace/name` → uid of every claim."""
        claims = self.server.list("persistentvolumeclaims", namespace)
        return {
            f"{c['metadata']['namespace']}/{c['metadata']['name']}": c["metadata"]["uid"]
            for c in claims
        }

    def op_count_bound(self, *, namespace: str | None = None) -> int:
        claims = self.server.list("persistentvolumeclaims", namespace)
        return sum(1 for c in claims if (c.get("status") or {}).get("phase") == "Bound")

    def op_wait_bound(self, *, namespace: str, count: int, wait_seconds: float) -> int:
        """Poll until `count` claims of `namespace` are Bound; returns how many are."""
        deadline = time.monotonic() + wait_seconds
        while True:
            bound = self.op_count_bound(namespace=namespace)
            if bound >= count or time.monotonic() > deadline:
                return bound
            time.sleep(FINE_POLL if bound >= 0.9 * count else COARSE_POLL)

    def op_request_mark(self) -> int:
        return len(self.server.requests)

    def op_request_counts(self, *, since: int) -> dict[str, int]:
        """`"<verb> <resource>"` → requests answered after log position `since`."""
        records = self.server.requests[since:]
        return dict(Counter(f"{r.verb} {resource_of(r.path)}" for r in records))

    def op_status_counts(self, *, since: int) -> dict[str, int]:
        records = self.server.requests[since:]
        return {str(k): v for k, v in Counter(r.status for r in records).items()}

    def op_refused_writes(self, *, since: int) -> dict[str, int]:
        """`"<verb> <resource> <status>"` → writes after `since` that got a 4xx/5xx."""
        records = self.server.requests[since:]
        return dict(
            Counter(
                f"{r.verb} {resource_of(r.path)} {r.status}"
                for r in records
                if r.verb in WRITE_VERBS and r.status >= 400
            )
        )


class HeketiOps:
    """Commands run next to the Heketi test server."""

    def __init__(self, options: dict[str, Any]) -> None:
        from testbed.heketi.server import HeketiTestServer

        self.server = HeketiTestServer(**options)

    def start(self) -> str:
        url: str = self.server.start()
        return url

    def stop(self) -> None:
        self.server.stop()

    def op_set_latency(self, *, ms: int) -> None:
        self.server.set_latency(ms)

    def op_request_mark(self) -> int:
        return len(self.server.requests)

    def op_status_counts(self, *, since: int) -> dict[str, int]:
        records = self.server.requests[since:]
        return {str(k): v for k, v in Counter(r.status for r in records).items()}

    def op_request_counts(self, *, since: int) -> dict[str, int]:
        """`"<METHOD> <route>"` (`GET /volumes` lists, `GET /volumes/{id}` reads one)
        → requests after log position `since`."""
        records = self.server.requests[since:]
        return dict(Counter(f"{r.method} {heketi_route(r.path)}" for r in records))

    def op_volume_count(self) -> int:
        return len(self.server.volumes())

    def op_seed_volumes(self, *, count: int) -> int:
        """`count` complete volumes made at once (a Heketi that already holds them)."""
        return len(self.server.seed_volumes([f"seed-{i:05d}" for i in range(count)]))


_OPS: dict[str, type[KubeOps] | type[HeketiOps]] = {"kube": KubeOps, "heketi": HeketiOps}


def _child_main(conn: Connection, kind: str, options: dict[str, Any]) -> None:
    """Entry point of a host child: start the server, then serve commands until told."""
    try:
        ops = _OPS[kind](options)
        url = ops.start()
    except Exception as err:  # reported to the parent, which fails with it
        conn.send(("error", f"{kind} server did not start: {type(err).__name__}: {err}"))
        return
    conn.send(("ok", url))
    try:
        _serve_commands(conn, ops)
    finally:
        ops.stop()


def _serve_commands(conn: Connection, ops: KubeOps | HeketiOps) -> None:
    while True:
        try:
            name, kwargs = conn.recv()
        except EOFError:
            return
        if name == "stop":
            conn.send(("ok", None))
            return
        try:
            conn.send(("ok", getattr(ops, f"op_{name}")(**kwargs)))
        except Exception as err:  # a failed command is reported, the server keeps serving
            conn.send(("error", f"{name}: {type(err).__name__}: {err}"))


class Host:
    """A test server in a spawned child process (context manager)."""

    def __init__(self, kind: str, **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_child_main, args=(child_conn, kind, options), name=f"bench-{kind}", daemon=True
        )
        self.kind = kind
        self.url = ""

    @property
    def pid(self) -> int:
        pid = self._process.pid
        if pid is None:
            raise BenchError(f"{self.kind} host is not running")
        return pid

    def start(self) -> str:
        self._process.start()
        self.url = str(self._receive(START_TIMEOUT, "start"))
        return self.url

    def call(self, name: str, *, timeout: float = CALL_TIMEOUT, **kwargs: Any) -> Any:
        """Run command `name` in the child; its result, or BenchError with its failure."""
        self._conn.send((name, kwargs))
        return self._receive(timeout, name)

    def _receive(self, timeout: float, what: str) -> Any:
        if not self._conn.poll(timeout):
            raise BenchError(f"{self.kind} host: no answer to {what!r} within {timeout:.0f} s")
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise BenchError(f"{self.kind} host exited during {what!r}") from None
        if status != "ok":
            raise BenchError(f"{self.kind} host: {value}")
        return value

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(BenchError, OSError, EOFError):
                self.call("stop", timeout=15)
            self._process.join(15)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)

    def __enter__(self) -> Host:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def chunks(objs: Iterable[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    """`objs` in lists of at most `size`, so no single pipe message grows huge."""
    batch: list[dict[str, Any]] = []
    for obj in objs:
        batch.append(obj)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
