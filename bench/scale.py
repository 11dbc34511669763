"""Scenario `scale`: the controller started against 10,000 bound claim/volume pairs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import objects, procs
from bench.burst import INFLIGHT, LATENCY_MS, heketi_options
from bench.controller import Controller
from bench.hosts import BenchError, Host, chunks
from bench.provisioning import ideal_seconds, measure_wave
from provisioner import names

#: Bound claim/volume pairs that exist before the controller starts.
PAIRS = 10_000
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
#: Annotations the in-cluster PV binder leaves on a bound claim.
BOUND_CLAIM_ANNOTATIONS = {
    "pv.kubernetes.io/bind-completed": "yes",
    "pv.kubernetes.io/bound-by-controller": "yes",
}


def _namespace_of(index: int) -> str:
    return f"scale-{index % NAMESPACES:03d}"


def bound_pairs(*, count: int, heketi_url: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """`count` (claim, volume) pairs as they look once provisioned and bound."""
    for index in range(count):
        ns, name, uid = _namespace_of(index), f"data-{index:05d}", str(uuid.uuid4())
        volume = objects.provisioned_volume(
            claim_ns=ns, claim_name=name, claim_uid=uid,
            gid=objects.GID_MIN + index, heketi_url=heketi_url,
        )  # fmt: skip
        volume["status"] = {"phase": "Bound"}
        claim = objects.claim(name=name, ns=ns, volume_name=volume["metadata"]["name"])
        claim["metadata"]["uid"] = uid
        claim["metadata"]["annotations"] = {
            **BOUND_CLAIM_ANNOTATIONS,
            names.ANN_STORAGE_PROVISIONER: names.DRIVER_NAME,
        }
        claim["status"] = {
            "phase": "Bound",
            "accessModes": ["ReadWriteMany"],
            "capacity": {"storage": objects.CLAIM_SIZE},
        }
        yield claim, volume


def seed_pairs(kube: Host, *, count: int, heketi_url: str) -> float:
    """Store `count` bound pairs; seconds it took. Fails unless all claims read Bound."""
    started = time.monotonic()
    kube.call("seed", objs=[objects.namespace(_namespace_of(i)) for i in range(NAMESPACES)])
    pairs = list(bound_pairs(count=count, heketi_url=heketi_url))
    for batch in chunks((claim for claim, _ in pairs), SEED_BATCH):
        kube.call("seed", objs=batch)
    for batch in chunks((volume for _, volume in pairs), SEED_BATCH):
        kube.call("seed", objs=batch)
    _check_seeded(kube, pairs)
    return time.monotonic() - started


def _check_seeded(kube: Host, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    uids: dict[str, str] = kube.call("claim_uids")
    wrong = [
        claim for claim, _ in pairs
        if uids.get(f"{claim['metadata']['namespace']}/{claim['metadata']['name']}")
        != claim["metadata"]["uid"]
    ]  # fmt: skip
    if wrong:
        raise BenchError(f"{len(wrong)} seeded claims lost their uid; the pairs would not match")
    bound = kube.call("count_bound")
    if bound < len(pairs):
        kube.call("bind_claims", keys=[
            f"{c['metadata']['namespace']}/{c['metadata']['name']}" for c, _ in pairs
        ])  # fmt: skip
        bound = kube.call("count_bound")
    if bound < len(pairs):
        raise BenchError(f"only {bound} of {len(pairs)} seeded claims are Bound")


def run(
    *,
    workdir: Path,
    pairs: int = PAIRS,
    idle_seconds: float = IDLE_SECONDS,
    controller_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    with (
        Host("heketi", **heketi_options(latency_ms=LATENCY_MS)) as heketi,
        Host("kube", binder=True) as kube,
    ):
        kube.call("create", objs=objects.base_objects(heketi_url=heketi.url))
        seed_seconds = seed_pairs(kube, count=pairs, heketi_url=heketi.url)
        mark = kube.call("request_mark")
        with Controller(
            workdir=workdir, kube_url=kube.url, name="scale", extra_args=controller_args
        ) as controller:
            healthy, ready = controller.wait_ready()
            result: dict[str, Any] = {
                "pairs": pairs,
                "seed_seconds": round(seed_seconds, 2),
                "healthz_seconds": round(healthy, 3),
                "ready_seconds": round(ready, 3),
                "rss_mb": round(procs.rss_mb(controller.pid), 1),
                "startup_api_requests": kube.call("request_counts", since=mark),
            }
            result.update(_idle(kube, controller, seconds=idle_seconds))
            wave = measure_wave(
                kube=kube, heketi=heketi, controller=controller,
                namespace="scale-new", claims=NEW_CLAIMS, timeout=WAVE_TIMEOUT,
            )  # fmt: skip
            ideal = ideal_seconds(claims=NEW_CLAIMS, inflight=INFLIGHT, latency_ms=LATENCY_MS)
            wave.update(
                heketi_latency_ms=LATENCY_MS,
                ideal_seconds=ideal,
                ratio=round(wave["seconds"] / ideal, 3),
            )
            result["provision"] = wave
            result["rss_mb_end"] = round(procs.rss_mb(controller.pid), 1)
    return result


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
