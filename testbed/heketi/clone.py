"""Heketi v10.4.1's volume clone (`POST /volumes/{id}/clone`) for the Heketi test server.

Sources, tag v10.4.1 of heketi/heketi:

* `apps/glusterfs/app_volume.go` `VolumeClone`: the body is `api.VolumeCloneRequest`
  (`{"name": …}`, optional; a JSON error is 422 `request unable to be parsed`, a name
  outside `^[a-zA-Z0-9_-]+$` 400 `validation failed: name: must be in a valid
  format.`); an unknown source 404 `Id not found`; then `AsyncHttpOperation` (429 when
  `max_inflight_operations` is reached, else 202 + `Location: /queue/ID`, 303 to the
  clone's `/volumes/{id}` when done).
* `operations_volume.go` `VolumeCloneOperation`: Build marks the source pending
  (`RecordCloneVolume`: hidden from reads until the clone ends) and adds the clone's
  bricks; Exec runs the executor's `VolumeClone` (a Gluster snapshot of the source,
  activated, cloned under the new name, started: `executors/cmdexec`); Finalize
  shows both volumes again, Rollback shows the source again.
* `volume_entry.go` `NewVolumeEntryFromClone` / `prepareVolumeClone`: what carries
  over — size, cluster, durability, GID, Gluster volume options, snapshot settings,
  mount hosts; the name is the request's or `vol_<id>`; one brick per source brick on
  the same device, taking no device space ("clones do not take extra storage space").
* Heketi checks no name for a clone: a name Gluster already has makes glusterd's
  `snapshot clone` fail ("Volume with name:%s already exists", glusterd's message in
  Debian's glusterd 10.3), reported by cmdexec `SnapshotCloneVolume` as
  "Failed to clone snapshot %v to volume %v: %v" — the queue answers 500 with it.

In `gluster` mode the clone is a real Gluster volume with its own directory bricks
holding a copy of the source's files made through two FUSE mounts (this machine has
no thin LVM for Gluster snapshots). docs/test-servers.md states how that differs.
"""

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Final

from provisioner.heketi.placement import placement_of
from provisioner.log import get_logger
from testbed.heketi import gluster
from testbed.heketi.bodies import RequestError
from testbed.heketi.store import Brick, Store, VolumeRecord, new_id

_log = get_logger("heketi-test-server")

_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
#: What the real handler answers for a source with a pending operation: it calls
#: `err.Error()` on a nil error, and negroni's Recovery middleware answers the panic 500.
PANIC_MESSAGE: Final = "PANIC: runtime error: invalid memory address or nil pointer dereference"
#: One copy step (mount, cp, umount) of a gluster-mode clone.
COPY_TIMEOUT_SECONDS: Final = 300.0


def clone_name(body: Any) -> str:
    """The name of a `VolumeCloneRequest` body ("" = Heketi names it `vol_<id>`)."""
    if not isinstance(body, dict):
        raise RequestError(422, "request unable to be parsed")
    name = body.get("name")
    if name is None:
        return ""
    if not isinstance(name, str):
        raise RequestError(422, "request unable to be parsed")
    if name and not set(name) <= _NAME_CHARS:
        raise RequestError(400, "validation failed: name: must be in a valid format.")
    return name


def clone_record(store: Store, source: VolumeRecord, name: str) -> VolumeRecord:
    """The clone as Build leaves it (hidden until it ends); not yet in `store`."""
    clone_id = new_id()
    clone = replace(
        source,
        id=clone_id,
        name=name or f"vol_{clone_id}",
        options=list(source.options),
        durability=dict(source.durability),
        snapshot=dict(source.snapshot),
        bricks=[],
        state="creating",
        busy=True,
    )
    for brick in source.bricks:
        brick_id = new_id()
        device_dir = os.path.dirname(os.path.dirname(brick.path))  # <root>/vg_<device>
        path = f"{device_dir}/brick_{brick_id}/brick"
        clone.bricks.append(replace(brick, id=brick_id, path=path, volume=clone_id, reserved_kib=0))
    return clone


def name_clash(store: Store, clone: VolumeRecord) -> str | None:
    """The failure glusterd's `snapshot clone` gives when the name is taken, or None."""
    if clone.name not in store.volume_names(clone.cluster):
        return None
    snapshot = f"tmpsnap_{new_id()}"
    return (
        f"Failed to clone snapshot {snapshot} to volume {clone.name}: "
        f"Volume with name:{clone.name} already exists"
    )


def add_bricks_to_devices(store: Store, bricks: Sequence[Brick]) -> None:
    """`device.BrickAdd` for each clone brick, without taking device space."""
    for brick in bricks:
        device = store.device(brick.device)
        if device is not None:
            device.bricks.add(brick.id)


def gluster_clone(
    *, source: VolumeRecord, clone: VolumeRecord, bricks: Sequence[gluster.BrickSpec]
) -> None:
    """A started Gluster volume `clone.name` with the source's layout, options and GID,
    holding a copy of the source's files; rolled back on failure."""
    gluster.create_volume(
        name=clone.name,
        durability=clone.durability,
        bricks=bricks,
        gid=clone.gid,
        options=clone.options,
        arbiter=placement_of(clone.options).arbiter,  # an arbiter source's clone is one too
    )
    try:
        copy_files(source=source.name, target=clone.name, host=bricks[0].host)
    except (OSError, subprocess.SubprocessError, gluster.GlusterCommandError):
        gluster.delete_volume(name=clone.name, bricks=bricks)
        raise
    _log.info("gluster_volume_cloned", source=source.name, volume=clone.name)


def copy_files(*, source: str, target: str, host: str) -> None:
    """Copy every file of Gluster volume `source` into `target` through FUSE mounts
    (owners, modes, times, links and extended attributes kept: `cp -a`)."""
    with (
        tempfile.TemporaryDirectory(prefix="heketi-clone-") as work,
        _mounted(host, source, os.path.join(work, "source"), read_only=True) as src,
        _mounted(host, target, os.path.join(work, "target"), read_only=False) as dst,
    ):
        _run(["cp", "-a", "--", f"{src}/.", f"{dst}/"])


@contextlib.contextmanager
def _mounted(host: str, volume: str, point: str, *, read_only: bool) -> Iterator[str]:
    os.mkdir(point)
    options = ["-o", "ro"] if read_only else []
    _run(["mount", "-t", "glusterfs", *options, f"{host}:/{volume}", point])
    try:
        yield point
    finally:
        _run(["umount", point])


def _run(argv: list[str]) -> None:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=COPY_TIMEOUT_SECONDS, check=False
    )
    if result.returncode != 0:
        output = result.stderr.strip() or result.stdout.strip()
        raise gluster.GlusterCommandError(f"{argv[0]} exited {result.returncode}: {output}")
