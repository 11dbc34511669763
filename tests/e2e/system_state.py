"""What a demo may leave on this machine: Gluster volumes on the (shared) glusterd, mounts."""

import subprocess
from pathlib import Path

#: Seconds one gluster CLI call may take (glusterd's lock may be held by another run).
GLUSTER_CLI_TIMEOUT_S = 30


def gluster_volumes() -> set[str]:
    """Every volume the local glusterd knows."""
    listing = subprocess.run(
        ["gluster", "--mode=script", "volume", "list"],
        capture_output=True,
        text=True,
        timeout=GLUSTER_CLI_TIMEOUT_S,
        check=True,
    )
    return set(listing.stdout.split())


def mounts_containing(marker: str) -> list[str]:
    """This process's mountinfo lines whose text holds `marker` (a demo's work dir prefix)."""
    lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if marker in line]
