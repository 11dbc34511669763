"""Scenario `scale`: the controller started against 10,000 bound claim/volume pairs."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import objects, procs
from bench.burst import INFLIGHT, LATENCY_MS, heketi_options
from bench.controller import Controller
from bench.hosts import BenchError, Host, chunks
from bench.provisioning import ideal_seconds, measure_wave, profiled
from provisioner.core import annotations

#: Bound claim/volume pairs that exist before the controller starts.
PAIRS = 10_000
#: Pair counts of `scale_sizes`: start-up time, memory and idle CPU as the cluster grows.
SIZES = (1_000, 10_000, 50_000)
#: Seconds the idle controller is watched per size in `scale_sizes`.
SIZES_IDLE_SECONDS = 10.0
#: Namespaces the pairs are spread over (100 claims each).
NAMESPACES = 100
#: Seconds the controller is watched while nothing happens.
IDLE_SECONDS = 30.0
#: Claims provisioned after the idle period, on top of the 10,000.
NEW_CLAIMS = 100
#: Objects per seed message to the API host.
SEED_BATCH = 2000
#: Seconds a wave of new claims may take.
WAVE_TIMEOUT = 120.0
#: Seconds the API server's binder may take to bind the seeded pairs of a namespace.
BIND_TIMEOUT = 120.0


def _namespace_of(index: int) -> str:
    return f"scale-{index % NAMESPACES:03d}"


def _claims(count: int) -> Iterator[dict[str, Any]]:
    for index in range(count):
        claim = objects.claim(name=f"data-{index:05d}", ns=_namespace_of(index))
        claim["metadata"]["annotations"] = {
            annotations.ANN_STORAGE_PROVISIONER: annotations.DRIVER_NAME
        }
        yield claim


def _volumes(uids: dict[str, str], *, heketi_url: str) -> Iterator[dict[str, Any]]:
    """A provisioned volume pre-bound to each claim (the binder then binds both)."""
    for index, (key, uid) in enumerate(sorted(uids.items())):
        ns, name = key.split("/", 1)
        yield objects.provisioned_volume(
            claim_ns=ns, claim_name=name, claim_uid=uid,
            gid=objects.GID_MIN + index, heketi_url=heketi_url,
        )  # fmt: skip


def seed_pairs(kube: Host, *, count: int, heketi_url: str) -> float:
    """Store `count` claims and their volumes and wait until the binder bound them all.

    Claims first (the server assigns their uids), then volumes whose `claimRef`
    carries those uids, as the controller makes them; the API server's binder
    binds each pair as kube-controller-manager would. Returns the seconds taken.
    """
    started = time.monotonic()
    kube.call("seed", objs=[objects.namespace(_namespace_of(i)) for i in range(NAMESPACES)])
    for batch in chunks(_claims(count), SEED_BATCH):
        kube.call("seed", objs=batch)
    uids: dict[str, str] = kube.call("claim_uids")
    for batch in chunks(_volumes(uids, heketi_url=heketi_url), SEED_BATCH):
        kube.call("seed", objs=batch)
    for ns in sorted({_namespace_of(i) for i in range(count)}):
        in_ns = sum(1 for key in uids if key.startswith(f"{ns}/"))
        bound = kube.call(
            "wait_bound",
            timeout=BIND_TIMEOUT + 30,
            namespace=ns,
            count=in_ns,
            wait_seconds=BIND_TIMEOUT,
        )
        if bound < in_ns:
            raise BenchError(f"the binder bound only {bound} of {in_ns} seeded claims in {ns}")
    return time.monotonic() - started


@contextmanager
def seeded_servers(pairs: int) -> Iterator[tuple[Host, Host, dict[str, Any]]]:
    """The Heketi and API servers with `pairs` bound pairs seeded; the result row so far."""
    with (
        Host("heketi", **heketi_options(latency_ms=LATENCY_MS)) as heketi,
        Host("kube", binder=True) as kube,
    ):
        kube.call("create", objs=objects.base_objects(heketi_url=heketi.url))
        seconds = seed_pairs(kube, count=pairs, heketi_url=heketi.url)
        yield heketi, kube, {"pairs": pairs, "seed_seconds": round(seconds, 2)}


def run(
    *,
    workdir: Path,
    pairs: int = PAIRS,
    idle_seconds: float = IDLE_SECONDS,
    controller_args: tuple[str, ...] = (),
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """Seed the pairs, start the controller: start-up, idle and 100 more claims."""
    with seeded_servers(pairs) as (heketi, kube, result):
        mark = kube.call("request_mark")
        with Controller(
            workdir=workdir, kube_url=kube.url, name="scale", extra_args=controller_args
        ) as controller:
            result.update(_startup(kube, controller, since=mark))
            with profiled(controller.pid, profile_dir / "scale_idle.txt" if profile_dir else None):
                result.update(_idle(kube, controller, seconds=idle_seconds))
            result["provision"] = _more_claims(
                kube, heketi, controller,
                profile=profile_dir / "scale_provision.txt" if profile_dir else None,
            )  # fmt: skip
            result["rss_mb_end"] = round(procs.rss_mb(controller.pid), 1)
    return result


def run_sizes(
    *, workdir: Path, sizes: tuple[int, ...] = SIZES, controller_args: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Start-up (ready time, memory) and idle CPU at each number of pairs."""
    rows: dict[str, Any] = {}
    for pairs in sizes:
        with seeded_servers(pairs) as (_, kube, row):
            mark = kube.call("request_mark")
            with Controller(
                workdir=workdir,
                kube_url=kube.url,
                name=f"scale-{pairs}",
                extra_args=controller_args,
            ) as controller:
                row.update(_startup(kube, controller, since=mark))
                row.update(_idle(kube, controller, seconds=SIZES_IDLE_SECONDS))
            del row["startup_api_requests"], row["idle_api_requests"]
            rows[f"p{pairs}"] = row
    return {"scale_sizes": rows}


def _startup(kube: Host, controller: Controller, *, since: int) -> dict[str, Any]:
    """Readiness, then the initial pass over every cached object; memory after both."""
    healthy, ready = controller.wait_ready()
    rss_at_ready = procs.rss_mb(controller.pid)
    drained = controller.wait_drained()
    return {
        "healthz_seconds": round(healthy, 3),
        "ready_seconds": round(ready, 3),
        "rss_mb_at_ready": round(rss_at_ready, 1),
        "initial_pass_seconds": round(drained, 2),
        "startup_cpu_seconds": round(procs.cpu_seconds(controller.pid), 2),
        "rss_mb": round(procs.rss_mb(controller.pid), 1),
        "startup_api_requests": kube.call("request_counts", since=since),
    }


def _more_claims(
    kube: Host, heketi: Host, controller: Controller, *, profile: Path | None
) -> dict[str, Any]:
    wave = measure_wave(
        kube=kube, heketi=heketi, controller=controller,
        namespace="scale-new", claims=NEW_CLAIMS, timeout=WAVE_TIMEOUT, profile=profile,
    )  # fmt: skip
    ideal = ideal_seconds(claims=NEW_CLAIMS, inflight=INFLIGHT, latency_ms=LATENCY_MS)
    wave.update(
        heketi_latency_ms=LATENCY_MS, ideal_seconds=ideal, ratio=round(wave["seconds"] / ideal, 3)
    )
    return wave


def _idle(kube: Host, controller: Controller, *, seconds: float) -> dict[str, Any]:
    mark = kube.call("request_mark")
    before = procs.usage(controller.pid)
    time.sleep(seconds)
    after = procs.usage(controller.pid)
    return {
        "idle_seconds": seconds,
        "idle_cpu_percent": round(procs.cpu_percent(before, after), 2),
        "idle_api_requests": kube.call("request_counts", since=mark),
        "rss_mb_after_idle": round(procs.rss_mb(controller.pid), 1),
    }
