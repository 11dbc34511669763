"""The burst on a real control plane beside the Kubernetes API test server.

`make bench-kube KUBECONFIG=<cluster-admin kubeconfig> [KUBE_AUDIT_LOG=<its audit log>]`:
500 claims at once, the Heketi test server at 200 ms per create, the controller process as
its service account (deploy/'s RBAC), once against the API test server (binder and
protections on) and once against the given cluster (kube-apiserver + the real PV binder).
Printed per target: seconds until every PV we create exists, until every claim shows
`Bound`, the controller's API writes per claim (the test server's request log; the
cluster's audit log when KUBE_AUDIT_LOG is given) and its CPU per claim.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import burst, procs
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from tests.contract.clusters import Cluster, RealCluster, TestServerCluster
from tests.contract.conftest import Target
from tests.contract.controller_world import Controller, World

WRITES = frozenset({"create", "update", "patch", "delete", "POST", "PUT", "PATCH", "DELETE"})
CONTROLLER_USER = "system:serviceaccount:glusterfs-provisioner:glusterfs-provisioner-controller"
POLL_SECONDS = 0.25
TIMEOUT = 900.0


def _until(done: Callable[[], bool], started: float) -> float:
    while not done():
        if time.monotonic() - started > TIMEOUT:
            raise TimeoutError(f"not done within {TIMEOUT:.0f} s")
        time.sleep(POLL_SECONDS)
    return round(time.monotonic() - started, 2)


class Writes:
    """Counts the controller's API writes (Leases aside) from a mark on."""

    def __init__(self, cluster: Cluster, audit_log: Path | None) -> None:
        self._cluster, self._log = cluster, audit_log
        self._mark = 0

    def mark(self) -> None:
        if isinstance(self._cluster, TestServerCluster):
            self._mark = len(self._cluster.server.requests)
        elif self._log is not None:
            self._mark = self._log.stat().st_size

    def count(self) -> int | None:
        if isinstance(self._cluster, TestServerCluster):
            records = self._cluster.server.requests[self._mark :]
            return sum(1 for r in records if r.verb in WRITES and "/leases" not in r.path)
        if self._log is None:
            return None
        with self._log.open(encoding="utf-8") as stream:
            stream.seek(self._mark)
            events = [json.loads(line) for line in stream if line.strip()]
        return sum(
            1 for e in events
            if e.get("stage") == "ResponseComplete" and e["verb"] in WRITES
            and e["user"]["username"] == CONTROLLER_USER
            and (e.get("objectRef") or {}).get("resource") != "leases"
        )  # fmt: skip


def wave(cluster: Cluster, target: Target, workdir: Path, claims: int,
         audit_log: Path | None) -> dict[str, Any]:  # fmt: skip
    """One burst of `claims` claims on `cluster`; its figures."""
    world = World(cluster, target, "bench")
    controller = Controller(cluster, workdir)
    controller.start()
    writes = Writes(cluster, audit_log)
    try:
        time.sleep(3)  # the controller's caches synced and its Lease taken
        writes.mark()
        if controller.process is None:
            raise RuntimeError("the controller did not start")
        pid = controller.process.pid
        before = procs.usage(pid)
        started = time.monotonic()
        for i in range(claims):
            world.claim(f"c{i:04d}")
        created = round(time.monotonic() - started, 2)
        pvs = _until(lambda: len(world.volumes()) >= claims, started)
        bound = _until(lambda: len(world.bound()) >= claims, started)
        time.sleep(2)  # Events are sent after the bind
        cpu = procs.usage(pid).cpu_seconds - before.cpu_seconds
        count = writes.count()
    finally:
        if cluster.real:
            world.delete_everything()
        controller.stop()
    return {
        "claims": claims, "seconds_to_create_claims": created,
        "seconds_to_every_pv": pvs, "seconds_to_every_claim_bound": bound,
        "api_writes_per_claim": None if count is None else round(count / claims, 2),
        "controller_cpu_ms_per_claim": round(1000 * cpu / claims, 2),
    }  # fmt: skip


def run(kubeconfig: str, audit_log: Path | None, claims: int) -> dict[str, dict[str, Any]]:
    options = burst.heketi_options(latency_ms=burst.LATENCY_MS)
    results: dict[str, dict[str, Any]] = {}
    with HeketiTestServer(**options) as heketi, tempfile.TemporaryDirectory() as tmp:
        target = Target(heketi.url, options["admin_key"], None)
        with KubeTestServer(binder=True, pv_protection=True) as server:
            testbed = TestServerCluster(server)
            testbed.create({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": "glusterfs-provisioner"}})  # fmt: skip
            (Path(tmp) / "a").mkdir()
            results["kube test server"] = wave(testbed, target, Path(tmp) / "a", claims, None)
        real = RealCluster(kubeconfig)
        real.install_rbac()
        (Path(tmp) / "b").mkdir()
        results["kube-apiserver 1.36"] = wave(real, target, Path(tmp) / "b", claims, audit_log)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.burst_kube", description=__doc__)
    parser.add_argument("--kubeconfig", required=True, help="cluster-admin kubeconfig")
    parser.add_argument("--audit-log", type=Path, help="the cluster's audit log (API writes)")
    parser.add_argument("--claims", type=int, default=burst.CLAIMS)
    args = parser.parse_args(argv)
    results = run(args.kubeconfig, args.audit_log, args.claims)
    keys = list(next(iter(results.values())))
    print(f"{'':32}" + "".join(f"{name:>22}" for name in results))
    for key in keys:
        print(f"{key:32}" + "".join(f"{r[key]!s:>22}" for r in results.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
