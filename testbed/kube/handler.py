"""HTTP/1.1 front end: routing, verbs, query parameters, responses and watch streaming."""

import contextlib
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from provisioner.log import get_logger
from testbed.kube import bodies, errors, events, media, resources, tables
from testbed.kube.control import Faults, Latency, RequestLog, RequestRecord
from testbed.kube.errors import ApiError
from testbed.kube.resources import ResourceType
from testbed.kube.routing import Route, discovery_doc, int_param, parse_bool, route, verb_of
from testbed.kube.schema import drop_unknown_fields
from testbed.kube.selectors import Filter, parse_filter
from testbed.kube.store import ListResult, Store, Stored, dumps
from testbed.kube.watch import WatchRequest, WatchStream

JSON = dict[str, Any]

#: Watches without timeoutSeconds end after a random 30-60 minutes, as the apiserver's do.
DEFAULT_WATCH_MIN_SECONDS = 1800
#: Largest request body accepted (the apiserver's limit is 3 MiB for most objects).
MAX_BODY_BYTES = 3 * 1024 * 1024
#: Watch lines are sent in chunks of at most this many bytes.
CHUNK_BYTES = 64 * 1024
#: Retry-After of 429 answers (the apiserver's priority-and-fairness default).
RETRY_AFTER_SECONDS = 1
_REASON_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_log = get_logger("kube-test-server")


@dataclass
class ServerState:
    """Everything the handler threads share."""

    store: Store
    bookmark_interval: float
    faults: Faults = field(default_factory=Faults)
    latency: Latency = field(default_factory=Latency)
    log: RequestLog = field(default_factory=RequestLog)
    address: str = ""
    connections: set[socket.socket] = field(default_factory=set)
    watch_connections: set[socket.socket] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cut_watches(self) -> None:
        self.store.wake_all(cut=True)
        with self.lock:
            sockets = list(self.watch_connections)
        for sock in sockets:
            _shutdown(sock)

    def close_connections(self) -> None:
        with self.lock:
            sockets = list(self.connections)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@dataclass
class _Pending:
    """The request being served, until it is logged."""

    verb: str
    path: str
    started: float
    wall: float
    query: str


class Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive, chunked watch streams."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "kube-test-server"
    state: ServerState  # set on the subclass the server makes
    _warnings: list[str]
    _pending: "_Pending | None" = None

    def setup(self) -> None:
        super().setup()
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.state.lock:
            self.state.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # --- request flow ----------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        path = split.path
        self._warnings = []
        self._pending = _Pending("get", path, time.monotonic(), time.time(), split.query)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        r = route(path)
        try:
            verb = self._pending.verb = verb_of(method, r, query)
            body = self._read_body()
            fault = self.state.faults.take(verb, path)
            if fault is not None and fault.drop:
                self._record(0)
                self._drop()
                return
            if fault is not None:
                raise _injected(fault.status, verb, path)
            if verb != "watch":
                self.state.latency.wait()
            self._dispatch(method, verb, path, r, query, body)
        except ApiError as err:
            self._send_json(err.code, err.status())
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as err:  # a bug of ours: answer like the apiserver does, keep serving
            _log.exception("request failed", method=method, path=path)
            # Only the type: the exception's text may quote the body (a Secret's data).
            message = f"internal error: {type(err).__name__} (see the server log)"
            self._send_json(500, errors.ApiError(500, message).status())
        finally:
            self._record(0)

    def _record(self, status: int) -> None:
        """Log the request once, before its answer is written (tests may count at once)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            duration = time.monotonic() - pending.started
            self.state.log.add(
                RequestRecord(
                    pending.verb, pending.path, status, duration, pending.wall, pending.query
                )
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():
            self.close_connection = True
            raise errors.bad_request(f"invalid Content-Length header {text!r}")
        length = int(text)
        self._check_body_size(length)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = self._chunk_size(self.rfile.readline())
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            total += size
            self._check_body_size(total)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _chunk_size(self, line: bytes) -> int:
        try:
            return int(line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            self.close_connection = True
            raise errors.bad_request("malformed chunked request body") from None

    def _check_body_size(self, length: int) -> None:
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(
                413,
                f"Request entity too large: limit is {MAX_BODY_BYTES}",
                reason="RequestEntityTooLarge",
            )

    def _drop(self) -> None:
        self.close_connection = True
        _shutdown(self.connection)

    def _dispatch(
        self,
        method: str,
        verb: str,
        path: str,
        r: Route | None,
        query: dict[str, str],
        body: bytes,
    ) -> int:
        if r is None:
            if method != "GET":
                raise errors.page_not_found()
            return self._discovery(path)
        if verb == "watch":
            return self._watch(r, query)
        handler = _VERBS.get(verb)
        if handler is None:
            raise errors.method_not_allowed(method, r.rt.plural)
        code, payload = handler(self, r, query, body)
        if isinstance(payload, bytes):
            return self._send(code, payload)
        return self._send_json(code, payload)

    # --- responses -------------------------------------------------------------------------

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> int:
        self._record(code)
        reason = _REASON_PHRASES.get(code, "Unknown")
        head = (
            f"HTTP/1.1 {code} {reason}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Cache-Control: no-cache, private\r\n"
            f"X-Kubernetes-Pf-Flowschema-Uid: \r\n"
        )
        if code == 429:
            head += f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        for warning in self._warnings:
            head += f'Warning: 299 - "{_header_text(warning)}"\r\n'
        self._warnings = []
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode() + b"\r\n" + body)
        return code

    def _send_json(self, code: int, payload: Any) -> int:
        return self._send(code, dumps(payload))

    def _discovery(self, path: str) -> int:
        doc = discovery_doc(path.rstrip("/") or "/", self.state.address)
        if doc is None:
            if path.rstrip("/") in ("/healthz", "/readyz", "/livez"):
                return self._send(200, b"ok", "text/plain; charset=utf-8")
            return self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
        return self._send_json(200, doc)

    def _wants_table(self) -> bool:
        return "as=Table" in self.headers.get("Accept", "")

    # --- verbs -----------------------------------------------------------------------------

    def _get(self, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        assert r.name is not None
        stored = self.state.store.get(r.rt, _ns(r), r.name)
        if self._wants_table():
            return 200, tables.table(r.rt.bucket, [_shaped(r.rt, stored.obj)], {})
        return 200, _encode(r.rt, stored)

    def _list(self, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        flt = _filter(r.rt, query)
        result = self.state.store.list_page(
            r.rt,
            r.namespace,
            flt,
            limit=int_param(query, "limit"),
            token=query.get("continue") or None,
            resource_version=query.get("resourceVersion"),
            match=query.get("resourceVersionMatch") or None,
        )
        if self._wants_table():
            objs = [_shaped(r.rt, s.obj) for s in result.items]
            return 200, tables.table(r.rt.bucket, objs, _list_meta(result))
        return 200, _list_body(r.rt, result)

    def _create(self, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        if r.namespace is None and r.rt.namespaced:
            raise errors.method_not_allowed("POST", f"all-namespaces {r.rt.plural}")
        obj = media.object_body(body, self.headers.get("Content-Type"))
        self._warnings += drop_unknown_fields(r.rt, obj, _field_validation(query))
        stored = self.state.store.create(
            r.rt, _ns(r), _incoming(r.rt, obj), dry_run=bodies.dry_run(query)
        )
        return 201, _encode(r.rt, stored)

    def _update(self, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        assert r.name is not None
        obj = media.object_body(body, self.headers.get("Content-Type"))
        self._warnings += drop_unknown_fields(r.rt, obj, _field_validation(query))
        obj = _incoming(r.rt, obj)
        stored = self.state.store.update(
            r.rt,
            _ns(r),
            r.name,
            obj,
            status=r.subresource == "status",
            dry_run=bodies.dry_run(query),
        )
        return 200, _encode(r.rt, stored)

    def _patch(self, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        assert r.name is not None
        patched = bodies.patcher(r.rt, self.headers.get("Content-Type", ""), body)
        mode, stored_rt = _field_validation(query), resources.stored_type(r.rt)

        def change(doc: JSON) -> JSON:
            result = patched(doc)
            if isinstance(result, dict):
                self._warnings += drop_unknown_fields(stored_rt, result, mode)
            return result

        stored = self.state.store.mutate(
            r.rt,
            _ns(r),
            r.name,
            change,
            status=r.subresource == "status",
            dry_run=bodies.dry_run(query),
        )
        return 200, _encode(r.rt, stored)

    def _delete(self, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        assert r.name is not None
        options = bodies.delete_options(body, query, self.headers.get("Content-Type"))
        stored, gone = self.state.store.delete(r.rt, _ns(r), r.name, options)
        if not gone or r.rt.returns_deleted:
            return 200, _encode(r.rt, stored)
        meta = stored.obj["metadata"]
        details = {"name": meta["name"], "kind": r.rt.plural, "uid": meta["uid"]}
        if r.rt.group:
            details["group"] = r.rt.group
        return 200, {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    def _delete_collection(self, r: Route, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        store = self.state.store
        options = bodies.delete_options(body, query, self.headers.get("Content-Type"))
        result = store.list_page(r.rt, r.namespace, _filter(r.rt, query))
        deleted = []
        for item in result.items:
            meta = item.obj["metadata"]
            try:
                stored, _ = store.delete(r.rt, meta.get("namespace", ""), meta["name"], options)
            except ApiError as err:
                if err.code == 404:
                    continue
                raise
            deleted.append(_shaped(r.rt, stored.obj))
        return 200, {
            "kind": f"{r.rt.kind}List",
            "apiVersion": r.rt.api_version,
            "metadata": {"resourceVersion": str(store.resource_version)},
            "items": deleted,
        }

    # --- watch -----------------------------------------------------------------------------

    def _watch(self, r: Route, query: dict[str, str]) -> int:
        request = _watch_request(r, query)
        encode = _table_encoder(r.rt) if self._wants_table() else partial(_encode, r.rt)
        stream = WatchStream(
            self.state.store,
            request,
            encode=encode,
            bookmark_interval=self.state.bookmark_interval,
        )
        first = stream.start()
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nCache-Control: no-cache, private\r\n\r\n"
        )
        self._record(200)
        with self.state.lock:
            self.state.watch_connections.add(self.connection)
        try:
            self._stream(stream, first)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # a bug of ours mid-stream: end the stream the way a crash would
            _log.exception("watch failed", path=urlsplit(self.path).path)
            self._drop()
        finally:
            with self.state.lock:
                self.state.watch_connections.discard(self.connection)
        return 200

    def _stream(self, stream: WatchStream, lines: list[bytes]) -> None:
        while True:
            self._write_lines(lines)
            if stream.finished:
                break
            lines = stream.next_batch()
            if not lines and self._client_gone():
                self.close_connection = True
                return
        if stream.cut or self.state.store.closed:
            self._drop()
            return
        self.wfile.write(b"0\r\n\r\n")

    def _client_gone(self) -> bool:
        """Whether the client closed its end (a watch with nothing to send never notices)."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True
        return peeked == b""

    def _write_lines(self, lines: list[bytes]) -> None:
        batch: list[bytes] = []
        size = 0
        for text in lines:
            batch.append(text)
            size += len(text)
            if size >= CHUNK_BYTES:
                self._write_chunk(b"".join(batch))
                batch, size = [], 0
        if batch:
            self._write_chunk(b"".join(batch))

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


Verb = Callable[[Handler, Route, dict[str, str], bytes], tuple[int, Any]]
_VERBS: dict[str, Verb] = {
    "get": Handler._get,
    "list": Handler._list,
    "create": Handler._create,
    "update": Handler._update,
    "patch": Handler._patch,
    "delete": Handler._delete,
    "deletecollection": Handler._delete_collection,
}


# --- helpers ---------------------------------------------------------------------------------


def _injected(status: int, verb: str, path: str) -> ApiError:
    details = {"retryAfterSeconds": RETRY_AFTER_SECONDS} if status == 429 else None
    return ApiError(status, f"injected fault: {status} for {verb} {path}", details=details)


def _field_validation(query: dict[str, str]) -> str:
    return query.get("fieldValidation") or "Warn"


def _header_text(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return "".join(c if " " <= c <= "~" else "?" for c in escaped)


def _ns(r: Route) -> str:
    return r.namespace or ""


def _shaped(rt: ResourceType, obj: JSON) -> JSON:
    return events.to_events_v1(obj) if events.is_events_v1(rt) else obj


def _encode(rt: ResourceType, stored: Stored) -> bytes:
    return dumps(events.to_events_v1(stored.obj)) if events.is_events_v1(rt) else stored.raw


def _incoming(rt: ResourceType, obj: JSON) -> JSON:
    return events.to_core(obj) if events.is_events_v1(rt) else obj


def _filter(rt: ResourceType, query: dict[str, str]) -> Filter:
    supported = ("metadata.name", "metadata.namespace", *rt.fields)
    path_of = events.field_in_core if events.is_events_v1(rt) else _identity
    return parse_filter(
        query.get("labelSelector", ""), query.get("fieldSelector", ""), supported, path_of
    )


def _identity(text: str) -> str:
    return text


def _list_meta(result: ListResult) -> JSON:
    meta: JSON = {"resourceVersion": str(result.resource_version)}
    if result.continue_token:
        meta["continue"] = result.continue_token
    if result.remaining is not None:
        meta["remainingItemCount"] = result.remaining
    return meta


def _list_body(rt: ResourceType, result: ListResult) -> bytes:
    head = {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": _list_meta(result)}
    items = b",".join(_encode(rt, s) for s in result.items)
    return dumps(head)[:-1] + b',"items":[' + items + b"]}"


def _table_encoder(rt: ResourceType) -> Callable[[Stored], bytes]:
    """Watch events as one-row Tables (`kubectl get -w`); columns only in the first."""
    sent_columns = False

    def encode(stored: Stored) -> bytes:
        nonlocal sent_columns
        doc = tables.table(rt.bucket, [_shaped(rt, stored.obj)], {})
        if sent_columns:
            doc["columnDefinitions"] = []
        sent_columns = True
        return dumps(doc)

    return encode


def _watch_request(r: Route, query: dict[str, str]) -> WatchRequest:
    timeout = int_param(query, "timeoutSeconds")
    if timeout == 0:
        timeout = int(DEFAULT_WATCH_MIN_SECONDS * (1 + random.random()))  # noqa: S311
    return WatchRequest(
        rt=r.rt,
        namespace=r.namespace if r.rt.namespaced else None,
        flt=_filter(r.rt, query),
        resource_version=query.get("resourceVersion"),
        send_initial=parse_bool(query.get("sendInitialEvents"), "sendInitialEvents"),
        bookmarks=bool(parse_bool(query.get("allowWatchBookmarks"), "allowWatchBookmarks")),
        deadline=time.monotonic() + timeout,
    )
