"""Stopping the child processes `make demo`, `make bench` and `make chaos` start."""

import signal
import subprocess
from typing import Any, Final

#: Seconds a child gets after SIGKILL to be reaped.
REAP_TIMEOUT_S: Final = 5.0


def stop_process(process: "subprocess.Popen[Any] | None", *, timeout: float) -> None:
    """SIGTERM a child we started and wait for it; SIGKILL it after `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(REAP_TIMEOUT_S)
