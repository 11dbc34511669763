"""The soak's child processes: two controllers with leader election and the node plugin.

Each runs as `python -m provisioner ...`, JSON logs appended to one file per
role (every incarnation of a role writes to the same file). A process that
exits is counted and started again, as a Deployment or DaemonSet would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from testbed.processes import stop_process

#: Shorter than the defaults (15/10/2 s) so leader changes happen within a short run;
#: the same ratios as the defaults.
LEASE_DURATION: Final = "6s"
RENEW_DEADLINE: Final = "4s"
RETRY_PERIOD: Final = "1s"
#: Namespace of the Lease and the Heketi key Secret.
SYSTEM_NAMESPACE: Final = "glusterfs-provisioner"
#: Workers per controller: enough for the soak's few dozen claims.
WORKERS: Final = 4
#: Every cached object is looked at again this often (the default is 10 min).
RESYNC: Final = "60s"
#: Seconds a SIGTERM may take before SIGKILL (shutdown at the end of the run).
STOP_TIMEOUT_S: Final = 20.0
#: How long a process that exited on its own waits before it is started again
#: (kubelet's first crash-loop backoff is 10 s; short here so a run sees many).
RESTART_DELAY_S: Final = 1.0


@dataclass
class Child:
    """One supervised process role (e.g. controller "a")."""

    role: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    #: Exit codes seen, in order (negative: killed by that signal).
    exits: list[int] = field(default_factory=list)
    starts: int = 0
    #: Set when the soak killed it: the supervisor restarts it at this monotonic time.
    restart_at: float | None = None
    #: Why the coming restart happens: "killed" or "exited <code>".
    restart_reason: str = ""

    def start(self) -> None:
        if self.log is None:
            self.log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(
            self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=env
        )
        self.starts += 1
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, *, restart_after_s: float) -> bool:
        """SIGKILL it now; the supervisor starts it again after `restart_after_s`."""
        if not self.running():
            return False
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_S)
        self.exits.append(self.process.returncode)
        self.process = None
        self.restart_at = time.monotonic() + restart_after_s
        self.restart_reason = "killed"
        return True

    def supervise(self, now: float) -> str | None:
        """Restart it when due; returns why it was restarted ("killed" / "exited N")."""
        if self.process is not None and self.process.poll() is not None:
            self.exits.append(self.process.returncode)
            self.process = None
            self.restart_at = now + RESTART_DELAY_S
            self.restart_reason = f"exited {self.exits[-1]}"
        if self.process is None and self.restart_at is not None and now >= self.restart_at:
            why = self.restart_reason
            self.start()
            return why
        return None

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process, timeout=STOP_TIMEOUT_S)
        if process is not None:
            self.exits.append(process.returncode)
        if self.log is not None:
            self.log.close()
            self.log = None


def _provisioner(*args: str) -> list[str]:
    return [sys.executable, "-m", "provisioner", "--log-format", "json", *args]


def controller(*, role: str, workdir: Path, kubeconfig: Path, metrics_port: int) -> Child:
    argv = _provisioner(
        "controller",
        "--kubeconfig",
        str(kubeconfig),
        "--workers",
        str(WORKERS),
        "--resync",
        RESYNC,
        "--metrics-address",
        f"127.0.0.1:{metrics_port}",
        "--leader-elect",
        "--leader-election-namespace",
        SYSTEM_NAMESPACE,
        "--leader-election-lease-duration",
        LEASE_DURATION,
        "--leader-election-renew-deadline",
        RENEW_DEADLINE,
        "--leader-election-retry-period",
        RETRY_PERIOD,
    )
    # POD_NAME starts the Lease holder identity: it tells which process leads.
    return Child(
        role=f"controller-{role}",
        argv=argv,
        log_path=workdir / f"controller-{role}.log",
        env={"POD_NAME": f"chaos-controller-{role}"},
    )


def node_plugin(*, workdir: Path, socket_path: Path) -> Child:
    kubelet = workdir / "kubelet"
    kubelet.mkdir(parents=True, exist_ok=True)
    argv = _provisioner(
        "node",
        "--endpoint",
        f"unix://{socket_path}",
        "--node-id",
        "chaos-node",
        "--kubelet-dir",
        str(kubelet),
        "--mount-log-dir",
        str(workdir / "mount-logs"),
    )
    return Child(role="node-plugin", argv=argv, log_path=workdir / "node-plugin.log")


def stop_all(children: list[Child]) -> None:
    for child in children:
        with contextlib.suppress(OSError):
            child.stop()
