"""Scenario `burst`: 500 claims at once, Heketi at 200 ms per create, then at 0 ms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import objects
from bench.controller import Controller
from bench.hosts import Host
from bench.provisioning import bound_curve, ideal_seconds, measure_wave

#: Claims created at once (the issue's figure; external-provisioner took ~4 min for 500).
CLAIMS = 500
#: Heketi's time per create in the first wave.
LATENCY_MS = 200
#: Heketi's default `max_inflight_operations`.
INFLIGHT = 8
#: Seconds a wave may take before the scenario fails (ideal is 12.6 s; 0 ms ~ 10 s).
WAVE_TIMEOUT = 150.0
#: The naive client for comparison: the same controller working one claim at a time.
NAIVE_ARGS = ("--workers", "1")
#: How long the naive client is watched, in multiples of our burst's time.
NAIVE_WATCH = 1.5


def heketi_options(*, latency_ms: int, inflight: int = INFLIGHT) -> dict[str, Any]:
    return {
        "admin_key": objects.ADMIN_KEY,
        "mode": "memory",
        "latency_ms": latency_ms,
        "max_inflight": inflight,
    }


def run(
    *,
    workdir: Path,
    claims: int = CLAIMS,
    controller_args: tuple[str, ...] = (),
    profile_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Both waves against one controller; `{"burst": ..., "burst_instant": ...}`."""
    with (
        Host("heketi", **heketi_options(latency_ms=LATENCY_MS)) as heketi,
        Host("kube", binder=True) as kube,
    ):
        kube.call("create", objs=objects.base_objects(heketi_url=heketi.url))
        with Controller(
            workdir=workdir, kube_url=kube.url, name="burst", extra_args=controller_args
        ) as controller:
            controller.wait_ready()
            slow = measure_wave(
                kube=kube, heketi=heketi, controller=controller,
                namespace="burst", claims=claims, timeout=WAVE_TIMEOUT,
                profile=profile_dir / "burst.txt" if profile_dir else None,
            )  # fmt: skip
            ideal = ideal_seconds(claims=claims, inflight=INFLIGHT, latency_ms=LATENCY_MS)
            slow.update(
                heketi_latency_ms=LATENCY_MS,
                heketi_max_inflight=INFLIGHT,
                ideal_seconds=ideal,
                ratio=round(slow["seconds"] / ideal, 3),
            )
            heketi.call("set_latency", ms=0)
            instant = measure_wave(
                kube=kube, heketi=heketi, controller=controller,
                namespace="burst-instant", claims=claims, timeout=WAVE_TIMEOUT,
                profile=profile_dir / "burst_instant.txt" if profile_dir else None,
            )  # fmt: skip
            instant.update(heketi_latency_ms=0, heketi_max_inflight=INFLIGHT)
    naive = run_naive(workdir=workdir, claims=claims, seconds=NAIVE_WATCH * slow["seconds"])
    return {"burst": slow, "burst_instant": instant, "burst_naive": naive}


def run_naive(*, workdir: Path, claims: int, seconds: float) -> dict[str, Any]:
    """Claims bound over `seconds` by a client that provisions one claim at a time
    (our controller with one worker) against the same Heketi: the curve to compare."""
    with (
        Host("heketi", **heketi_options(latency_ms=LATENCY_MS)) as heketi,
        Host("kube", binder=True) as kube,
    ):
        kube.call("create", objs=objects.base_objects(heketi_url=heketi.url))
        kube.call("create", objs=[objects.namespace("naive")])
        with Controller(
            workdir=workdir, kube_url=kube.url, name="naive", extra_args=NAIVE_ARGS
        ) as controller:
            controller.wait_ready()
            kube.call("create", objs=[objects.claim(name=f"claim-{i:05d}", ns="naive")
                                      for i in range(claims)])  # fmt: skip
            curve = bound_curve(kube, namespace="naive", claims=claims, timeout=seconds)
    return {"claims": claims, "workers": 1, "bound": curve[-1][1], "bound_over_time": curve}
