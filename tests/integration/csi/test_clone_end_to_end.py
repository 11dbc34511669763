"""Clones end to end on real GlusterFS, both ways of deploying.

The Heketi test server in `gluster` mode (real volumes on the local glusterd), the
Kubernetes API test server with our controller, the CSI Controller service on a socket
(as external-provisioner calls it) and the node plugin as a process (as kubelet calls
it): a file written through the published source volume is read back through a
published clone made by the controller (a claim's `dataSource`) and one made by
CreateVolume (`volume_content_source`); writing to a clone leaves the source unchanged.
"""

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner import names
from provisioner.csi.heketi_access import HeketiDefaults
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from tests.conftest import GlusterHost
from tests.integration.controller.conftest import (
    HEKETI_KEY,
    Cluster,
    add_namespaces_and_secret,
)
from tests.integration.csi.conftest import Plugin, gluster, stage_and_publish
from tests.integration.csi.controller_harness import (
    ControllerHarness,
    capability,
    start_harness,
    stop_harness,
)

pytestmark = pytest.mark.gluster

SOURCE_TEXT = "written through the published source volume\n"
_targets = itertools.count(1)


@pytest.fixture
def world(gluster_host: GlusterHost, tmp_path: Path) -> Iterator[Cluster]:
    with (
        HeketiTestServer(
            admin_key=HEKETI_KEY, mode="gluster", bricks_dir=str(tmp_path / "bricks")
        ) as heketi,
        KubeTestServer(binder=True) as kube,
    ):
        add_namespaces_and_secret(kube)
        cluster = Cluster(kube=kube, heketi=heketi)
        try:
            yield cluster
        finally:
            for controller in list(cluster.controllers):
                controller.stop()
            for leftover in heketi.volumes():
                gluster("volume", "stop", leftover["name"], "force")
                gluster("volume", "delete", leftover["name"])


@pytest.fixture
def csi(world: Cluster, tmp_path: Path) -> Iterator[ControllerHarness]:
    base = tmp_path / "csi"
    base.mkdir()
    defaults = HeketiDefaults(url=world.heketi.url, key=HEKETI_KEY)
    harness = start_harness(base, world.heketi, defaults=defaults)
    harness.secrets = {"key": HEKETI_KEY}
    try:
        yield harness
    finally:
        stop_harness(harness)


def publish(plugin: Plugin, volume_id: str, context: dict[str, str]) -> Path:
    """NodeStageVolume + NodePublishVolume as kubelet calls them; the pod's path."""
    n = next(_targets)
    staging = plugin.kubelet_dir / "plugins" / f"clone-e2e-{n}" / "globalmount"
    target = plugin.kubelet_dir / "pods" / f"clone-pod-{n}" / "mount"
    staging.parent.mkdir(parents=True)
    target.parent.mkdir(parents=True)
    stage_and_publish(
        plugin, volume_id, context, staging=staging, target=target, capability=capability()
    )
    return target


def csi_attributes(pv: dict[str, Any]) -> tuple[str, dict[str, str]]:
    csi = pv["spec"]["csi"]
    return csi["volumeHandle"], dict(csi["volumeAttributes"])


def test_a_file_written_to_a_source_is_in_its_clones_and_their_writes_stay_theirs(
    world: Cluster, csi: ControllerHarness, plugin: Plugin
) -> None:
    world.storage_class(parameters=world.class_parameters(volumetype="replicate:3"))
    world.start_controller()
    world.claim("data", size="1Gi")
    source_pv = world.pv_for(world.wait_bound("data", timeout=120))
    assert source_pv is not None
    source_id, source_context = csi_attributes(source_pv)
    source = publish(plugin, source_id, source_context)
    (source / "hello.txt").write_text(SOURCE_TEXT)

    # through our controller: a claim whose dataSource is the source claim
    world.claim("copy", size="2Gi", dataSource={"kind": "PersistentVolumeClaim", "name": "data"})
    clone_pv = world.pv_for(world.wait_bound("copy", timeout=180))
    assert clone_pv is not None
    clone_id, clone_context = csi_attributes(clone_pv)
    by_claim = publish(plugin, clone_id, clone_context)

    # through the CSI Controller service: CreateVolume with volume_content_source
    # A name of this run's own: glusterd is shared with any other run on the machine.
    request = csi.create_request(
        f"csi-clone-{os.getpid()}", parameters={"volumetype": "replicate:3"}
    )
    request.volume_content_source.volume.volume_id = source_id
    made = csi.controller.CreateVolume(request, timeout=180).volume
    by_csi = publish(plugin, made.volume_id, dict(made.volume_context))

    for clone in (by_claim, by_csi):
        assert (clone / "hello.txt").read_text() == SOURCE_TEXT
        (clone / "hello.txt").write_text(f"changed in {clone}\n")
        assert (clone / "hello.txt").read_text() == f"changed in {clone}\n"
    assert (source / "hello.txt").read_text() == SOURCE_TEXT

    heketi = {v["id"]: v for v in world.heketi.volumes()}
    assert heketi[clone_id]["size"] == 2 and heketi[made.volume_id]["size"] == 1
    assert heketi[clone_id]["gid"] == heketi[made.volume_id]["gid"] == heketi[source_id]["gid"]
    assert clone_pv["metadata"]["annotations"][names.ANN_GID] == str(heketi[clone_id]["gid"])
    assert (source / ".").stat().st_gid == heketi[source_id]["gid"]
    assert (by_claim / ".").stat().st_gid == heketi[clone_id]["gid"]
    assert "Number of Bricks: 2 x 3 = 6" in gluster("volume", "info", clone_context["volume"])
