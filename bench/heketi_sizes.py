"""Scenario `heketi_sizes`: the same burst on a Heketi already holding 0, 1,000 and
10,000 volumes. What the controller pays per claim (CPU, bytes read, Heketi requests)
must not grow with the volumes Heketi holds: a claim's first create looks no name up
(its intent was recorded just now), so no claim lists Heketi's volumes.

Each size gets fresh servers and a fresh controller, so no size inherits another's
warm caches; Heketi answers at once (0 ms), where the controller's own cost shows most.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import objects
from bench.burst import heketi_options
from bench.controller import Controller
from bench.hosts import Host
from bench.provisioning import measure_wave

#: Volumes Heketi holds before the burst.
SIZES = (0, 1_000, 10_000)
#: Claims per burst.
CLAIMS = 200
#: Seconds a burst may take before the scenario fails.
WAVE_TIMEOUT = 120.0
#: Figures of a wave kept per size (the curve and request tables stay in `burst`).
KEPT = (
    "seconds",
    "cpu_ms_per_pvc",
    "kb_from_heketi_per_pvc",
    "heketi_requests_per_pvc",
    "heketi_lists_per_pvc",
    "heketi_requests",
    "api_writes_per_pvc",
    "http_429",
)


def measure(
    *, workdir: Path, volumes: int, claims: int, controller_args: tuple[str, ...]
) -> dict[str, Any]:
    with (
        Host("heketi", **heketi_options(latency_ms=0)) as heketi,
        Host("kube", binder=True) as kube,
    ):
        heketi.call("seed_volumes", count=volumes, timeout=600)
        kube.call("create", objs=objects.base_objects(heketi_url=heketi.url))
        with Controller(
            workdir=workdir, kube_url=kube.url, name=f"heketi-{volumes}", extra_args=controller_args
        ) as controller:
            controller.wait_ready()
            wave = measure_wave(
                kube=kube, heketi=heketi, controller=controller,
                namespace="sizes", claims=claims, timeout=WAVE_TIMEOUT,
            )  # fmt: skip
    return {"volumes": volumes, "claims": claims, **{key: wave[key] for key in KEPT}}


def run(
    *, workdir: Path, claims: int = CLAIMS, controller_args: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`{"heketi_sizes": {"v0": ..., "v1000": ..., "v10000": ..., "cpu_ratio": ...}}`."""
    rows = {
        f"v{n}": measure(workdir=workdir, volumes=n, claims=claims, controller_args=controller_args)
        for n in SIZES
    }
    smallest, largest = rows[f"v{SIZES[0]}"], rows[f"v{SIZES[-1]}"]
    ratios = {
        f"{figure}_ratio": round(largest[figure] / smallest[figure], 2)
        if smallest[figure]
        else None
        for figure in ("cpu_ms_per_pvc", "kb_from_heketi_per_pvc", "heketi_requests_per_pvc")
    }
    return {"heketi_sizes": {**rows, **ratios}}
