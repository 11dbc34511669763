"""Real GlusterFS operations for the Heketi test server's `gluster` mode.

Volumes are made on the local glusterd with directory bricks (`force`, since
they sit on the root filesystem and replica sets share one host). glusterd
holds a cluster-wide lock, so CLI calls are serialized in this process and
retried while another transaction (from another process) holds it.

Expansion adds a new brick set with `add-brick`, as Heketi does: the volume
becomes distributed-replicate (or distributed-disperse) and mounted clients
see the new bricks, so tests exercise the real layout change.
"""

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provisioner.log import get_logger

_log = get_logger("heketi-test-server")

#: One gluster CLI call; volume create/start on a busy glusterd can take a while.
COMMAND_TIMEOUT_SECONDS = 120.0
#: How long to keep retrying while glusterd's lock is held by someone else.
LOCK_RETRY_SECONDS = 60.0
_LOCK_ERRORS = ("Another transaction is in progress", "Locking failed", "Lock not released")
_cli_lock = threading.Lock()  # glusterd is one per machine: serialize process-wide


class GlusterCommandError(Exception):
    """A gluster command failed; the message is gluster's own output."""


@dataclass(frozen=True)
class BrickSpec:
    host: str
    path: str  # .../brick_<id>/brick; the parent directory is created and removed

    @property
    def argument(self) -> str:
        return f"{self.host}:{self.path}"


def run_gluster(args: Sequence[str], *, timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
    """Run `gluster --mode=script ARGS`, serialized and retried on lock contention."""
    argv = ["gluster", "--mode=script", *args]
    deadline = time.monotonic() + LOCK_RETRY_SECONDS
    delay = 0.2
    while True:
        with _cli_lock:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        output = result.stderr.strip() or result.stdout.strip()
        if result.returncode == 0:
            return result.stdout
        if any(e in output for e in _LOCK_ERRORS) and time.monotonic() + delay < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 3.0)
            continue
        raise GlusterCommandError(output or f"{' '.join(argv)} exited {result.returncode}")


def _layout(durability: dict[str, Any], *, arbiter: bool = False) -> list[str]:
    """cmdexec/volume.go VolumeCreate: `replica N` (+ `arbiter 1` for an arbiter
    volume: the third brick of each set holds only metadata) or `disperse-data D
    redundancy R`."""
    if durability["type"] == "replicate" and durability["replicate"]["replica"] > 1:
        replica = ["replica", str(durability["replicate"]["replica"])]
        return [*replica, "arbiter", "1"] if arbiter else replica
    if durability["type"] == "disperse":
        disperse = durability["disperse"]
        return ["disperse-data", str(disperse["data"]), "redundancy", str(disperse["redundancy"])]
    return []


def _make_bricks(bricks: Sequence[BrickSpec], gid: int) -> None:
    for brick in bricks:
        os.makedirs(brick.path, exist_ok=False)
        if gid:
            os.chown(brick.path, 0, gid)
            os.chmod(brick.path, 0o2775)  # noqa: S103 - Heketi: group-writable, setgid brick root


def remove_brick_dirs(bricks: Sequence[BrickSpec]) -> None:
    for brick in bricks:
        shutil.rmtree(os.path.dirname(brick.path), ignore_errors=True)


def create_volume(
    *,
    name: str,
    durability: dict[str, Any],
    bricks: Sequence[BrickSpec],
    gid: int,
    options: Sequence[str],
    arbiter: bool = False,
) -> None:
    """volume create (+ set options) + start; rolls back on failure. `bricks` in set
    order (an arbiter volume's arbiter brick last in each set)."""
    _make_bricks(bricks, gid)
    created = False
    layout = _layout(durability, arbiter=arbiter)
    try:
        run_gluster(["volume", "create", name, *layout, *[b.argument for b in bricks], "force"])
        created = True
        for option in options:
            key, _, value = option.strip().partition(" ")
            run_gluster(["volume", "set", name, key, value.strip()])
        run_gluster(["volume", "start", name])
    except (GlusterCommandError, subprocess.TimeoutExpired):
        if created:
            _delete_quietly(name)
        remove_brick_dirs(bricks)
        raise
    _log.info("gluster_volume_created", volume=name, bricks=len(bricks))


def add_brick_set(
    *,
    name: str,
    durability: dict[str, Any],
    bricks: Sequence[BrickSpec],
    gid: int,
    arbiter: bool = False,
) -> None:
    """add-brick of new sets; an arbiter volume's as Heketi's (createAddBrickCommands:
    no replica count, Gluster keeps the volume's `replica 3 arbiter 1` shape)."""
    _make_bricks(bricks, gid)
    replicate = durability["type"] == "replicate" and not arbiter
    replica = _layout(durability)[:2] if replicate else []
    try:
        run_gluster(["volume", "add-brick", name, *replica, *[b.argument for b in bricks], "force"])
    except (GlusterCommandError, subprocess.TimeoutExpired):
        remove_brick_dirs(bricks)
        raise


def delete_volume(*, name: str, bricks: Sequence[BrickSpec]) -> None:
    """stop + delete; a volume glusterd no longer has counts as deleted."""
    for args in (["volume", "stop", name, "force"], ["volume", "delete", name]):
        try:
            run_gluster(args)
        except GlusterCommandError as exc:
            if "does not exist" not in str(exc) and "is not in the started state" not in str(exc):
                raise
    remove_brick_dirs(bricks)


def _delete_quietly(name: str) -> None:
    for args in (["volume", "stop", name, "force"], ["volume", "delete", name]):
        try:
            run_gluster(args)
        except (GlusterCommandError, subprocess.TimeoutExpired) as exc:
            _log.warning("gluster_rollback_step_failed", volume=name, error=str(exc))
