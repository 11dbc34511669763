"""Name lookups on Heketi's own routes: requests and seconds of one cold and one warm
`find_volume_by_name` at 100, 1,000 and 10,000 volumes on the Heketi test server.

Cold: a client with an empty name map (a restarted controller): `GET /volumes`,
then `GET /volumes/{id}` of every volume, `max_inflight` (8) at a time. Warm: the
same client after one more volume was created elsewhere: `GET /volumes` plus that
one new id. Both look up a name that is absent (a claim's first create), so no
extra read of a hit is counted.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from provisioner.heketi.client import HeketiClient
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.name_cache import VolumeNameMap
from provisioner.heketi.session import Answer, HeketiSession, Request, Timeouts
from provisioner.heketi.types import Durability, VolumeCreateRequest

SIZES = (100, 1_000, 10_000)
KEY = "bench-admin-key-0123456789abcdef012345"


class _Counting(HeketiSession):
    def __init__(self, config: HeketiConfig) -> None:
        super().__init__(config)
        self.sent = 0

    def send(self, request: Request, *, timeout: Timeouts) -> Answer:
        self.sent += 1
        return super().send(request, timeout=timeout)


def _lookup(client: HeketiClient, session: _Counting) -> dict[str, float]:
    before = session.sent
    started, cpu = time.perf_counter(), time.process_time()
    assert client.find_volume_by_name("bench-absent") is None
    return {
        "requests": session.sent - before,
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(time.process_time() - cpu, 3),
    }


@contextmanager
def _server(volumes: int) -> Iterator[str]:
    """The Heketi test server in its own process, as Heketi is (the client's threads
    and the server's would otherwise share one interpreter lock); its URL."""
    argv = [sys.executable, "-m", "testbed.heketi", "--listen", "127.0.0.1:0",
            "--admin-key", KEY, "--seed-volumes", str(volumes)]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # printed once listening (or EOF on failure)
        if not url:
            raise RuntimeError("the Heketi test server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure(volumes: int) -> dict[str, Any]:
    with _server(volumes) as url:
        config = HeketiConfig(url=url, key=KEY)
        session = _Counting(config)
        client = HeketiClient(config, session=session, names=VolumeNameMap())
        cold = _lookup(client, session)
        request = VolumeCreateRequest(
            size_gib=1, name="bench-new", durability=Durability(type="replicate", replica=3)
        )
        HeketiClient(config).create_volume(request)
        warm = _lookup(client, session)
    return {
        "volumes": volumes,
        "cold_requests": cold["requests"],
        "cold_seconds": cold["seconds"],
        "cold_cpu_seconds": cold["cpu_seconds"],
        "warm_requests": warm["requests"],
        "warm_seconds": warm["seconds"],
    }


def run() -> dict[str, Any]:
    return {"names": {f"n{n}": measure(n) for n in SIZES}}
