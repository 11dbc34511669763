"""`make demo-migrate` end to end: in-tree volumes on real GlusterFS brought across."""

import re
import subprocess
import sys

from tests.conftest import GlusterHost
from tests.e2e.system_state import gluster_volumes, mounts_containing


def _made_by(out: str) -> set[str]:
    """The Gluster volumes the demo says it made (glusterd is shared with other runs)."""
    return set(re.findall(r"\b(gp-demo-legacy-\d+|vol_[0-9a-f]{32})\b", out))


def test_demo_migrate_reads_the_old_data_through_csi_and_leaves_nothing_behind(
    gluster_host: GlusterHost,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "testbed.demo_migrate"],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for step in range(1, 8):
        assert f"[{step}/7]" in out
    assert "gluster-pv: OK: migrated" in out and "2 of 2 PVs done" in out
    assert "Endpoints legacy/glusterfs-dynamic-db: delete it and its Service" in out
    assert "before-migration.txt: 'static data from before the migration'" in out
    assert "before-migration.txt: 'heketi data from before the migration'" in out
    assert "→ does not exist (deleted by our controller through Heketi)" in out
    assert "→ still there (static: Retain)" in out
    made = _made_by(out)
    assert len(made) == 2, made
    assert made.isdisjoint(gluster_volumes())
    assert mounts_containing("gp-demo-migrate-") == []
