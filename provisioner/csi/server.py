"""The CSI gRPC server: unix socket, one interceptor, per-volume locks, SIGTERM drain.

`serve()` starts a server for the Identity service plus, when given, the Node
and Controller services. Servicers raise `provisioner.errors.*`; the one
interceptor here turns those into gRPC status codes and logs one line per call
(method, volume id, duration, code). Requests are never logged whole: they may
carry secrets, mount flags or a full volume_context.
"""

import contextlib
import os
import signal
import stat
import threading
import time
from collections.abc import Callable
from concurrent import futures
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from provisioner import errors, log
from provisioner.csi import csi_pb2, csi_pb2_grpc
from provisioner.csi.identity import IdentityService
from provisioner.locks import KeyedLocks
from provisioner.metrics import DURATION_BUCKETS, PREFIX, HeketiRequestMetrics


class VolumeLocks:
    """One CSI operation per volume at a time: a second one gets `Aborted` at once (the
    CSI rule; the CO retries). Shared by the Node and Controller servicers of one process.
    """

    def __init__(self) -> None:
        self._locks = KeyedLocks()

    def hold(self, volume_id: str) -> AbstractContextManager[None]:
        """Hold the lock for `volume_id` for the `with` block, or raise Aborted."""
        return self._locks.held(
            volume_id,
            timeout=0,
            busy_message=f"an operation on volume {volume_id} is already in progress; retry later",
        )


class CsiMetrics:
    """The CSI calls one plugin served, per RPC: requests by final code, and latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            f"{PREFIX}_csi_requests",
            "CSI calls by RPC and final gRPC code (every code but OK is an error).",
            ["method", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            f"{PREFIX}_csi_errors",
            "CSI calls that ended with a code other than OK, by RPC and code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_csi_request_duration_seconds",
            "CSI call duration by RPC (every code).",
            ["method"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.heketi = HeketiRequestMetrics(self.registry)

    def observe(self, *, method: str, code: str, seconds: float) -> None:
        self.requests.labels(method, code).inc()
        if code != "OK":
            self.errors.labels(method, code).inc()
        self.latency.labels(method).observe(seconds)


_log = log.get_logger("csi.server")

#: gRPC worker threads: kubelet sends a handful of calls at a time per node; a
#: mount can block one thread for up to the mount timeout, so leave headroom.
DEFAULT_MAX_WORKERS: Final = 16

#: Socket permissions: owner and group (kubelet / the registrar) only.
SOCKET_MODE: Final = 0o660

#: Longest a SIGTERM waits for in-flight calls; above the mount command timeout
#: so a mount that is running when the pod is stopped can still finish.
DEFAULT_SHUTDOWN_GRACE: Final = 75.0
#: How long the liveness check waits for the plugin's own Probe (kubelet's probe: 3 s).
LIVENESS_PROBE_TIMEOUT: Final = 2.0

#: Methods that kubelet and the sidecars call every few seconds: logged at debug.
_CHATTY_METHODS: Final = frozenset(
    {
        "Probe",
        "GetPluginInfo",
        "GetPluginCapabilities",
        "NodeGetCapabilities",
        "ControllerGetCapabilities",
        "NodeGetVolumeStats",
    }
)

#: Domain error -> gRPC code. Order matters only for classes deriving from two.
_CODES: Final[tuple[tuple[type[errors.ProvisionerError], grpc.StatusCode], ...]] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.OutOfRange, grpc.StatusCode.OUT_OF_RANGE),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Internal, grpc.StatusCode.INTERNAL),
)


def status_code_for(error: errors.ProvisionerError) -> grpc.StatusCode:
    """The gRPC code for a domain error (INTERNAL for the bare base class)."""
    for error_type, code in _CODES:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def _request_volume_id(request: Any) -> str | None:
    for field in ("volume_id", "source_volume_id", "name"):
        value = getattr(request, field, None)
        if isinstance(value, str) and value:
            return value
    return None


class _CallLogger:
    """Times one call and logs it once with its final status (and counts it)."""

    def __init__(self, method: str, metrics: CsiMetrics | None) -> None:
        self.method = method.rsplit("/", 1)[-1]
        self._metrics = metrics
        self._start = time.monotonic()

    def finish(self, *, request: Any, code: grpc.StatusCode, message: str = "") -> None:
        seconds = time.monotonic() - self._start
        if self._metrics is not None:
            self._metrics.observe(method=self.method, code=code.name, seconds=seconds)
        fields: dict[str, Any] = {
            "method": self.method,
            "duration_ms": round(seconds * 1000, 1),
            "code": code.name,
        }
        volume_id = _request_volume_id(request)
        if volume_id is not None:
            fields["volume_id"] = volume_id
        if message:
            fields["error"] = message
        if code is not grpc.StatusCode.OK:
            _log.warning("csi call failed", **fields)
        elif self.method in _CHATTY_METHODS:
            _log.debug("csi call", **fields)
        else:
            _log.info("csi call", **fields)


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Maps domain errors to status codes, logs every unary call and, given `metrics`,
    counts and times it per RPC."""

    def __init__(self, metrics: CsiMetrics | None = None) -> None:
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        behaviour = _wrap(handler.unary_unary, handler_call_details.method, self._metrics)
        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _wrap(
    behaviour: Callable[[Any, grpc.ServicerContext], Any],
    method: str,
    metrics: CsiMetrics | None,
) -> Callable[[Any, grpc.ServicerContext], Any]:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        call_log = _CallLogger(method, metrics)
        try:
            response = behaviour(request, context)
        except Exception as error:
            code, message = _failure(error, call_log.method)
            call_log.finish(request=request, code=code, message=message)
            context.abort(code, message)
            raise  # not reached: abort raises
        call_log.finish(request=request, code=grpc.StatusCode.OK)
        return response

    return call


def _failure(error: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    """Status code and user-facing message for an exception out of a servicer."""
    if isinstance(error, errors.ProvisionerError):
        return status_code_for(error), str(error)
    if isinstance(error, NotImplementedError):  # the generated base servicer's default
        return grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by this plugin"
    # A bug of ours: log it with its traceback, never leak its details to the caller.
    _log.error("csi call crashed", method=method, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(error).__name__}"


def socket_path(endpoint: str) -> Path:
    """The filesystem path of a `unix:///abs/path` endpoint (InvalidArgument otherwise)."""
    for prefix in ("unix://", "unix:"):
        if endpoint.startswith(prefix):
            path = endpoint[len(prefix) :]
            break
    else:
        raise errors.InvalidArgument(
            f"endpoint {endpoint!r} is not supported; use unix:///absolute/path/csi.sock"
        )
    if not path.startswith("/") or path.endswith("/"):
        raise errors.InvalidArgument(
            f"endpoint {endpoint!r} must name an absolute socket path, e.g. unix:///csi/csi.sock"
        )
    return Path(os.path.normpath(path))


def _remove_stale_socket(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise errors.FailedPrecondition(
            f"{path} exists and is not a socket; refusing to replace it"
        )
    path.unlink()
    _log.info("removed stale socket", path=str(path))


def serve(
    endpoint: str,
    *,
    identity: IdentityService,
    node: csi_pb2_grpc.NodeServicer | None = None,
    controller: csi_pb2_grpc.ControllerServicer | None = None,
    max_workers: int = DEFAULT_MAX_WORKERS,
    metrics: CsiMetrics | None = None,
) -> grpc.Server:
    """Start serving on the unix socket `endpoint` and return the running server.

    Identity always; Node and Controller when given; every call counted in `metrics`.
    The identity servicer must advertise CONTROLLER_SERVICE exactly when a controller
    servicer is served.
    """
    if identity.controller_service != (controller is not None):
        raise ValueError(
            "identity.controller_service must be True exactly when a controller servicer is served"
        )
    path = socket_path(endpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_socket(path)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="csi"),
        interceptors=[ErrorMappingInterceptor(metrics)],
    )
    csi_pb2_grpc.add_IdentityServicer_to_server(identity, server)  # type: ignore[no-untyped-call]
    if node is not None:
        csi_pb2_grpc.add_NodeServicer_to_server(node, server)  # type: ignore[no-untyped-call]
    if controller is not None:
        csi_pb2_grpc.add_ControllerServicer_to_server(controller, server)  # type: ignore[no-untyped-call]
    _start_on_socket(server, path)
    services = ["identity"] + (["node"] if node else []) + (["controller"] if controller else [])
    _log.info("csi server listening", endpoint=f"unix://{path}", services=services)
    return server


def _start_on_socket(server: grpc.Server, path: Path) -> None:
    old_umask = os.umask(0o117)  # the socket is born 0660, never briefly wider
    try:
        server.add_insecure_port(f"unix://{path}")
        server.start()
    finally:
        os.umask(old_umask)
    os.chmod(path, SOCKET_MODE)


def stop(server: grpc.Server, *, endpoint: str, grace: float = DEFAULT_SHUTDOWN_GRACE) -> None:
    """Refuse new calls, let in-flight ones finish (up to `grace` s), remove the socket."""
    _log.info("csi server draining", grace_seconds=grace)
    server.stop(grace).wait(grace + 5.0)
    with contextlib.suppress(FileNotFoundError):
        socket_path(endpoint).unlink()
    _log.info("csi server stopped")


def run_until_signalled(
    server: grpc.Server, *, endpoint: str, grace: float = DEFAULT_SHUTDOWN_GRACE
) -> None:
    """Block until SIGTERM or SIGINT, then drain and stop (main thread only)."""
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        _log.info("signal received", signal=signal.Signals(signum).name)
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping.wait(timeout=1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stop(server, endpoint=endpoint, grace=grace)


def answers_probe(endpoint: str, *, timeout: float = LIVENESS_PROBE_TIMEOUT) -> bool:
    """Whether the server on `endpoint` answers a CSI Probe at all (liveness: any code
    but UNAVAILABLE and DEADLINE_EXCEEDED is an answer; readiness is Probe's own verdict).
    """
    with grpc.insecure_channel(endpoint) as channel:
        try:
            stub = csi_pb2_grpc.IdentityStub(channel)  # type: ignore[no-untyped-call]
            stub.Probe(csi_pb2.ProbeRequest(), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            return code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    return True
