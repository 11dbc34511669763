"""A throw-away Gluster volume on the local glusterd, and its FUSE client processes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench.hosts import BenchError

#: Every volume the benchmarks create starts with this, so it is never mistaken.
VOLUME_PREFIX = "tbench-"
#: Seconds one gluster CLI call may take (its own --timeout is a little shorter).
GLUSTER_TIMEOUT = 90
#: glusterd serialises transactions; other users of it make a call fail transiently.
GLUSTER_BUSY = ("Another transaction is in progress", "Locking failed", "locked")
#: Seconds to keep retrying a call that failed because glusterd was busy.
GLUSTER_BUSY_DEADLINE = 120.0


def gluster(*args: str) -> str:
    """Run `gluster --mode=script ARGS`, retrying while glusterd is busy; its stdout."""
    argv = ["gluster", "--mode=script", f"--timeout={GLUSTER_TIMEOUT - 10}", *args]
    deadline = time.monotonic() + GLUSTER_BUSY_DEADLINE
    delay = 0.2
    while True:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=GLUSTER_TIMEOUT, check=False
        )
        if done.returncode == 0:
            return done.stdout
        output = (done.stderr + done.stdout).strip()
        if not any(text in output for text in GLUSTER_BUSY) or time.monotonic() > deadline:
            raise BenchError(f"gluster {' '.join(args)} failed: {output}")
        time.sleep(delay)
        delay = min(delay * 2, 3.0)


class Volume:
    """A one-brick volume `tbench-…` on this host (context manager; stopped+deleted)."""

    def __init__(self) -> None:
        self.name = f"{VOLUME_PREFIX}{uuid.uuid4().hex[:10]}"
        self.brick_root = Path(tempfile.mkdtemp(prefix=self.name + "-", dir="/var/tmp"))
        self.created = False

    def create(self) -> None:
        brick = self.brick_root / "brick"
        gluster("volume", "create", self.name, f"{socket.gethostname()}:{brick}", "force")
        self.created = True
        gluster("volume", "start", self.name)

    def remove(self) -> None:
        if self.created:
            try:
                gluster("volume", "stop", self.name, "force")
            finally:
                gluster("volume", "delete", self.name)
                self.created = False
        shutil.rmtree(self.brick_root, ignore_errors=True)

    def __enter__(self) -> Volume:
        try:
            self.create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def fuse_clients(volume: str) -> int:
    """Number of glusterfs client processes serving `volume` on this host."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if argv and Path(argv[0].decode(errors="replace")).name == "glusterfs":
            count += _serves(argv, volume)
    return count


def _serves(argv: list[bytes], volume: str) -> bool:
    args = [arg.decode(errors="replace") for arg in argv]
    for index, arg in enumerate(args):
        value = None
        if arg.startswith("--volfile-id="):
            value = arg.split("=", 1)[1]
        elif arg == "--volfile-id" and index + 1 < len(args):
            value = args[index + 1]
        if value is not None and value.lstrip("/") == volume:
            return True
    return False
