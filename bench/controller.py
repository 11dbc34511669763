"""The controller under test: `glusterfs-provisioner controller` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from bench.hosts import BenchError
from bench.objects import SYSTEM_NAMESPACE
from testbed.kube.server import kubeconfig
from testbed.net import free_port
from testbed.processes import stop_process

#: Seconds the controller may take to become ready (the target is 10 at 10,000 pairs).
READY_TIMEOUT = 120.0
#: Seconds between readiness probes: fine enough to time readiness to 20 ms.
READY_POLL = 0.02
#: Seconds one probe request may take.
PROBE_TIMEOUT = 2.0
#: Seconds a SIGTERM may take to drain before the process is killed.
STOP_TIMEOUT = 20.0
#: Seconds the initial pass over every cached object may take.
DRAIN_TIMEOUT = 120.0
#: Seconds between looks at the queue depth gauges on /metrics.
DRAIN_POLL = 0.2
#: Worker count, the documented default of `--workers`.
WORKERS = 16
#: Run as deploy/ runs it: with leader election on a Lease (renewed every 2 s).
LEADER_ELECTION_ARGS = ("--leader-elect", "--leader-election-namespace", SYSTEM_NAMESPACE)


def write_kubeconfig(path: Path, *, server: str) -> Path:
    """A kubeconfig pointing at the Kubernetes API test server (plain HTTP, no auth)."""
    path.write_text(json.dumps(kubeconfig(server)))
    return path


class Controller:
    """One controller process, its log in `workdir`, its metrics on a free port."""

    def __init__(
        self, *, workdir: Path, kube_url: str, name: str, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.kubeconfig = write_kubeconfig(workdir / f"{name}.kubeconfig", server=kube_url)
        self.log_path = workdir / f"{name}.log"
        self.metrics = f"127.0.0.1:{free_port()}"
        self.extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_at = 0.0

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "provisioner", "--log-format", "json", "controller",
            "--kubeconfig", str(self.kubeconfig),
            "--workers", str(WORKERS),
            "--metrics-address", self.metrics,
            *LEADER_ELECTION_ARGS,
            *self.extra_args,
        ]  # fmt: skip

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchError("controller not started")
        return self._process.pid

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.started_at = time.monotonic()
        self._process = subprocess.Popen(
            self.argv(), stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def _probe(self, path: str) -> bool:
        url = f"http://{self.metrics}{path}"
        try:
            with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, *, timeout: float = READY_TIMEOUT) -> tuple[float, float]:
        """Seconds from start until /healthz answers and until /readyz says ready."""
        deadline = self.started_at + timeout
        healthy_at: float | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            if healthy_at is None and self._probe("/healthz"):
                healthy_at = time.monotonic()
            if healthy_at is not None and self._probe("/readyz"):
                ready_at = time.monotonic()
                return healthy_at - self.started_at, ready_at - self.started_at
            time.sleep(READY_POLL)
        raise BenchError(f"controller not ready within {timeout:.0f} s; see {self.log_path}")

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise BenchError(
                f"controller exited with {self._process.returncode}; see {self.log_path}:\n"
                + self.log_tail()
            )

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def metrics_text(self) -> str:
        url = f"http://{self.metrics}/metrics"
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as answer:
            text: str = answer.read().decode()
            return text

    def gauge(self, name: str) -> float | None:
        """The value of an unlabelled gauge on /metrics whose name ends with `name`."""
        for line in self.metrics_text().splitlines():
            metric, _, value = line.partition(" ")
            if metric.endswith(name) and not line.startswith("#"):
                return float(value)
        return None

    def wait_drained(self, *, timeout: float = DRAIN_TIMEOUT) -> float:
        """Seconds until the work queue is empty (checked twice, DRAIN_POLL apart)."""
        started = time.monotonic()
        empty_before = False
        while time.monotonic() - started < timeout:
            self._check_alive()
            empty = self.gauge("_queue_depth") == 0 and self.gauge("_queue_retrying") == 0
            if empty and empty_before:
                return time.monotonic() - started - DRAIN_POLL
            empty_before = empty
            time.sleep(DRAIN_POLL)
        raise BenchError(f"controller work queue not empty within {timeout:.0f} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process, timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Controller:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
