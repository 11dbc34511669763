"""`make demo` end to end: real processes, real GlusterFS, nothing left behind."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import GlusterHost


def _gluster_volumes() -> set[str]:
    listing = subprocess.run(
        ["gluster", "--mode=script", "volume", "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return {line for line in listing.stdout.split() if line.startswith("pvc-")}


def _demo_mounts() -> list[str]:
    return [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "gp-demo-" in line
    ]


def test_demo_runs_every_step_and_leaves_nothing_behind(gluster_host: GlusterHost) -> None:
    volumes_before = _gluster_volumes()
    result = subprocess.run(
        [sys.executable, "-m", "testbed.demo"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for step in range(1, 8):
        assert f"[{step}/7]" in result.stdout
    assert "pod-2 reads hello.txt: 'written by pod-1" in result.stdout
    assert "PVC capacity 2Gi, PV capacity 2Gi" in result.stdout
    assert "→ does not exist" in result.stdout
    assert _gluster_volumes() == volumes_before
    assert _demo_mounts() == []
