"""One measured wave of claims: create N at once, wait until all are Bound, count."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import objects, procs
from bench.controller import Controller
from bench.hosts import WRITE_VERBS, BenchError, Host

#: Leader election renews its Lease on a timer, not per claim: counted apart.
LEASE_RESOURCES = frozenset({"leases"})
#: A wave has settled when the controller sent no request for this many seconds.
SETTLE_QUIET = 0.5
#: Seconds to wait at most for a wave to settle.
SETTLE_TIMEOUT = 15.0
#: Claims created per pipe message to the API host.
CREATE_BATCH = 1000
#: Seconds between points of the claims-bound-over-time curve of a wave.
CURVE_STEP = 0.25


#: Samples per second of the optional py-spy profile of the controller during a wave.
PROFILE_RATE = 250
#: Seconds py-spy may take to write its profile after being stopped.
PROFILE_STOP_TIMEOUT = 30


@contextmanager
def profiled(pid: int, output: Path | None) -> Iterator[None]:
    """Sample `pid` with py-spy (GIL holders only, collapsed stacks) into `output`."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
    argv = [spy, "record", "--pid", str(pid), "--gil", "--format", "raw",
            "--rate", str(PROFILE_RATE), "--output", str(output)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(PROFILE_STOP_TIMEOUT)


def ideal_seconds(*, claims: int, inflight: int, latency_ms: int) -> float:
    """Heketi alone as the bottleneck: `inflight` creates at a time, `latency_ms` each."""
    return math.ceil(claims / inflight) * latency_ms / 1000.0


def _per_claim(counts: dict[str, int], claims: int) -> dict[str, Any]:
    by_verb: Counter[str] = Counter()
    lease_requests = 0
    for key, count in counts.items():
        verb, resource = key.split(" ", 1)
        if resource.split("/")[0] in LEASE_RESOURCES:
            lease_requests += count
        else:
            by_verb[verb] += count
    writes = sum(count for verb, count in by_verb.items() if verb in WRITE_VERBS)
    writes_by_object = {
        key: round(count / claims, 3)
        for key, count in sorted(counts.items())
        if key.split(" ", 1)[0] in WRITE_VERBS and key.split(" ", 1)[1] not in LEASE_RESOURCES
    }
    return {
        "api_writes_per_pvc_by_verb_and_object": writes_by_object,
        "api_requests_per_pvc_by_verb": {
            verb: round(count / claims, 3) for verb, count in sorted(by_verb.items())
        },
        "api_writes_per_pvc": round(writes / claims, 3),
        "api_gets_per_pvc": round(by_verb.get("get", 0) / claims, 3),
        "api_requests_by_verb_and_resource": dict(sorted(counts.items())),
        "lease_requests": lease_requests,
    }


def measure_wave(
    *,
    kube: Host,
    heketi: Host,
    controller: Controller,
    namespace: str,
    claims: int,
    timeout: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Create `claims` claims in `namespace` at once; figures until every one is Bound."""
    kube.call("create", objs=[objects.namespace(namespace)])
    kube_mark = kube.call("request_mark")
    heketi_mark = heketi.call("request_mark")
    with profiled(controller.pid, profile):
        heketi_port = int(heketi.url.rsplit(":", 1)[1].rstrip("/"))
        before, read_before = procs.usage(controller.pid), procs.bytes_received_from(heketi_port)
        started = time.monotonic()
        _create_claims(kube, namespace=namespace, claims=claims)
        curve = bound_curve(kube, namespace=namespace, claims=claims, timeout=timeout)
        seconds = time.monotonic() - started
        settle_seconds = _settle(kube, since=kube_mark)
        after, read_after = procs.usage(controller.pid), procs.bytes_received_from(heketi_port)
    bound = curve[-1][1]
    if bound < claims:
        raise BenchError(
            f"only {bound} of {claims} claims in {namespace} bound within {timeout:.0f} s; "
            f"controller log tail:\n{controller.log_tail()}"
        )
    cpu = after.cpu_seconds - before.cpu_seconds
    result: dict[str, Any] = {
        "claims": claims,
        "seconds": round(seconds, 3),
        "settle_seconds": round(settle_seconds, 2),
        "claims_per_second": round(claims / seconds, 1),
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_pvc": round(1000 * cpu / claims, 2),
        "kb_from_heketi_per_pvc": round((read_after - read_before) / 1024 / claims, 2),
        "rss_mb_after": round(procs.rss_mb(controller.pid), 1),
    }
    result.update(_heketi_figures(heketi, since=heketi_mark, claims=claims))
    result.update(_api_figures(kube, since=kube_mark, claims=claims))
    result["bound_over_time"] = curve
    return result


def _create_claims(kube: Host, *, namespace: str, claims: int) -> None:
    for batch_start in range(0, claims, CREATE_BATCH):
        count = min(CREATE_BATCH, claims - batch_start)
        batch = [
            objects.claim(name=f"claim-{i:05d}", ns=namespace)
            for i in range(batch_start, batch_start + count)
        ]
        kube.call("create", objs=batch)


def _heketi_figures(heketi: Host, *, since: int, claims: int) -> dict[str, Any]:
    statuses: dict[str, int] = heketi.call("status_counts", since=since)
    counts: dict[str, int] = heketi.call("request_counts", since=since)
    return {
        "http_429": int(statuses.get("429", 0)),
        "heketi_requests_by_status": statuses,
        "heketi_requests": counts,
        "heketi_requests_per_pvc": round(sum(counts.values()) / claims, 3),
        "heketi_lists_per_pvc": round(counts.get("GET /volumes", 0) / claims, 3),
    }


def _api_figures(kube: Host, *, since: int, claims: int) -> dict[str, Any]:
    figures = _per_claim(kube.call("request_counts", since=since), claims)
    figures["api_statuses"] = kube.call("status_counts", since=since)
    figures["api_refused_writes"] = kube.call("refused_writes", since=since)
    return figures


def _claim_requests(kube: Host, since: int) -> int:
    counts: dict[str, int] = kube.call("request_counts", since=since)
    return sum(n for key, n in counts.items() if key.split(" ")[1] not in LEASE_RESOURCES)


def _settle(kube: Host, *, since: int) -> float:
    """Wait until the controller's trailing writes (Events are sent asynchronously)
    are done: no API request but Lease renewals for SETTLE_QUIET seconds. The
    claims' CPU time and request counts are read after this; their time is not."""
    started = time.monotonic()
    seen = _claim_requests(kube, since)
    while time.monotonic() - started < SETTLE_TIMEOUT:
        time.sleep(SETTLE_QUIET)
        now = _claim_requests(kube, since)
        if now == seen:
            break
        seen = now
    return time.monotonic() - started


def bound_curve(
    kube: Host, *, namespace: str, claims: int, timeout: float
) -> list[tuple[float, int]]:
    """(seconds since now, claims Bound) every CURVE_STEP until all `claims` of
    `namespace` are Bound or `timeout` passed; the last point is the end."""
    started = time.monotonic()
    curve: list[tuple[float, int]] = [(0.0, 0)]
    while True:
        left = timeout - (time.monotonic() - started)
        bound: int = kube.call(
            "wait_bound",
            timeout=CURVE_STEP + 30,
            namespace=namespace,
            count=claims,
            wait_seconds=max(0.0, min(CURVE_STEP, left)),
        )
        curve.append((round(time.monotonic() - started, 3), bound))
        if bound >= claims or left <= CURVE_STEP:
            return curve
