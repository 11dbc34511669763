"""Process measurements from /proc, stopping our child processes, and the machine."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: Clock ticks per second of the utime/stime fields in /proc/<pid>/stat.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Memory page size, for the resident set in /proc/<pid>/statm.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: Seconds a version query of an external tool may take.
TOOL_TIMEOUT = 15


@dataclass(frozen=True)
class Usage:
    """CPU seconds a process has used so far, at a monotonic instant."""

    cpu_seconds: float
    at: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` (its threads included), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def usage(pid: int) -> Usage:
    """CPU seconds used by `pid` now."""
    return Usage(cpu_seconds=cpu_seconds(pid), at=time.monotonic())


def bytes_received_from(port: int) -> int:
    """Bytes received so far on the open TCP connections to 127.0.0.1:`port` (the
    kernel's `bytes_received` of each, from `ss`). Connections closed meanwhile are
    not counted: the controller keeps its connections to Heketi open for reuse."""
    argv = ["ss", "-tinH", "state", "established", "dst", f"127.0.0.1:{port}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=True)
    return sum(int(m) for m in re.findall(r"bytes_received:(\d+)", out.stdout))


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MiB."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * PAGE_SIZE / (1024 * 1024)


def cpu_percent(before: Usage, after: Usage) -> float:
    """Average CPU use between two readings, in percent of one core."""
    elapsed = after.at - before.at
    return 100.0 * (after.cpu_seconds - before.cpu_seconds) / elapsed if elapsed > 0 else 0.0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / (1024 * 1024), 1)
    return 0.0


def _os_name() -> str:
    try:
        release = Path("/etc/os-release").read_text()
    except OSError:
        return platform.system()
    for line in release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def _first_line_of(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else None


def machine() -> dict[str, object]:
    """What the numbers were measured on; the load average tells of other work."""
    load1, load5, _ = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "glusterfs": _first_line_of(["glusterfs", "--version"]),
        "git_commit": _first_line_of(["git", "rev-parse", "--short", "HEAD"]),
        "load_average_at_start": [round(load1, 2), round(load5, 2)],
    }
