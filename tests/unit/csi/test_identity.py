"""Identity service: name, version, capabilities and readiness."""

import pytest

from provisioner import __version__, errors
from provisioner.core.annotations import DRIVER_NAME
from provisioner.csi import csi_pb2
from provisioner.csi.identity import IdentityService

Service = csi_pb2.PluginCapability.Service
Expansion = csi_pb2.PluginCapability.VolumeExpansion


def test_plugin_info_reports_the_driver_name_and_package_version() -> None:
    identity = IdentityService(driver_name=DRIVER_NAME)
    info = identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), None)
    assert (info.name, info.vendor_version) == (DRIVER_NAME, __version__)


def test_node_only_plugin_advertises_no_plugin_capabilities() -> None:
    identity = IdentityService(driver_name=DRIVER_NAME)
    response = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), None)
    assert list(response.capabilities) == []


def test_plugin_with_a_controller_advertises_controller_and_online_expansion() -> None:
    identity = IdentityService(driver_name=DRIVER_NAME, controller_service=True)
    response = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest(), None)
    assert list(response.capabilities) == [
        csi_pb2.PluginCapability(service=Service(type=Service.CONTROLLER_SERVICE)),
        csi_pb2.PluginCapability(volume_expansion=Expansion(type=Expansion.ONLINE)),
    ]


def test_probe_is_ready_when_every_check_passes() -> None:
    identity = IdentityService(driver_name=DRIVER_NAME, readiness_checks=[lambda: None])
    response = identity.Probe(csi_pb2.ProbeRequest(), None)
    assert response.HasField("ready") and response.ready.value is True


def test_probe_is_failed_precondition_naming_the_missing_dependency() -> None:
    identity = IdentityService(
        driver_name=DRIVER_NAME,
        readiness_checks=[lambda: None, lambda: "mount.glusterfs not found"],
    )
    with pytest.raises(errors.FailedPrecondition) as raised:
        identity.Probe(csi_pb2.ProbeRequest(), None)
    assert str(raised.value) == "plugin not ready: mount.glusterfs not found"


@pytest.mark.parametrize(
    "name",
    ["", "-starts.with.dash", "ends.with.dot.", "has space", "x" * 64, "under_score"],
    ids=["empty", "leading-dash", "trailing-dot", "space", "too-long", "underscore"],
)
def test_invalid_driver_names_are_refused(name: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="driver name"):
        IdentityService(driver_name=name)
