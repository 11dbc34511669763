"""A test's own `World` (testbed/controller_world.py) with its controller, cleaned up
after the test, and waiting for what a test expects."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from provisioner.heketi.client import HeketiClient
from provisioner.heketi.errors import HeketiError
from testbed.clusters import Cluster
from testbed.controller_world import Controller, Target, World
from tests import polling

T = TypeVar("T")
#: Generous: a loaded 2-core machine runs the whole suite beside these tests, and a real
#: kube-controller-manager's binder sets phases at its own pace.
DEADLINE = 240.0


def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = DEADLINE) -> T:
    return polling.wait_for(what, probe, timeout=timeout)


@contextlib.contextmanager
def world_on(
    cluster: Cluster, target: Target, where: Path, label: str
) -> Iterator[tuple[World, Controller]]:
    """A `World` and its (not yet started) controller; afterwards the controller is
    stopped, the class's Heketi volumes removed, and on a real cluster its objects too."""
    made = World(cluster, target, label)
    controller = Controller(cluster, where)
    try:
        yield made, controller
    finally:
        if cluster.real:  # a real cluster keeps PVs: the controller deletes what is left
            made.delete_everything()
        controller.stop()
        client = HeketiClient(target.config())
        for volume_id in made.heketi_volumes():
            with contextlib.suppress(HeketiError):
                client.delete_volume(volume_id)
        client.close()
        if cluster.real:
            cluster.delete("storageclasses", made.storage_class)
            cluster.delete("namespaces", made.ns)
