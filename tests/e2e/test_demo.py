"""`make demo` end to end: real processes, real GlusterFS, nothing left behind."""

import re
import subprocess
import sys

from tests.conftest import GlusterHost
from tests.e2e.system_state import gluster_volumes, mounts_containing


def test_demo_runs_every_step_and_leaves_nothing_behind(gluster_host: GlusterHost) -> None:
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
    # glusterd is shared with other runs: check the volume this demo made, by name.
    made = set(re.findall(r"Gluster volume (pvc-[0-9a-f-]{36}) on", result.stdout))
    assert len(made) == 1, result.stdout
    assert made.isdisjoint(gluster_volumes())
    assert mounts_containing("gp-demo-") == []
