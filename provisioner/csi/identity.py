"""CSI Identity service: plugin name and version, capabilities, readiness."""

import re
from collections.abc import Callable, Sequence

import grpc
from google.protobuf import wrappers_pb2

from provisioner import __version__, errors
from provisioner.csi import csi_pb2, csi_pb2_grpc

#: CSI: domain-name notation, at most 63 characters, alphanumeric at both ends.
_DRIVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$")

#: A readiness check returns None when ready, else why not (the Probe error message).
ReadinessCheck = Callable[[], str | None]

_Service = csi_pb2.PluginCapability.Service
_Expansion = csi_pb2.PluginCapability.VolumeExpansion


def validate_driver_name(name: str) -> str:
    """`name` if it is a valid CSI driver name, else InvalidArgument."""
    if not _DRIVER_NAME.fullmatch(name):
        raise errors.InvalidArgument(
            f"driver name {name!r} is invalid: use at most 63 letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (e.g. glusterfs.csi.heketi.io)"
        )
    return name


class IdentityService(csi_pb2_grpc.IdentityServicer):
    """Identity for the node plugin and, with `controller_service=True`, the controller.

    With a controller the plugin advertises CONTROLLER_SERVICE and ONLINE volume
    expansion (a Gluster volume grows while mounted; no node step is needed).
    """

    def __init__(
        self,
        *,
        driver_name: str,
        vendor_version: str = __version__,
        controller_service: bool = False,
        readiness_checks: Sequence[ReadinessCheck] = (),
    ) -> None:
        self.driver_name = validate_driver_name(driver_name)
        self.vendor_version = vendor_version
        self.controller_service = controller_service
        self._readiness_checks = tuple(readiness_checks)

    def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(
            name=self.driver_name, vendor_version=self.vendor_version
        )

    def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=self.capabilities())

    def capabilities(self) -> list[csi_pb2.PluginCapability]:
        """The plugin capabilities this process advertises."""
        if not self.controller_service:
            return []
        return [
            csi_pb2.PluginCapability(service=_Service(type=_Service.CONTROLLER_SERVICE)),
            csi_pb2.PluginCapability(volume_expansion=_Expansion(type=_Expansion.ONLINE)),
        ]

    def Probe(
        self, request: csi_pb2.ProbeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ProbeResponse:
        """Ready, or FAILED_PRECONDITION naming each missing dependency (the CSI spec's
        code for "missing required dependency"; `ready=false` means still starting)."""
        reasons = self.not_ready()
        if reasons:
            raise errors.FailedPrecondition("plugin not ready: " + "; ".join(reasons))
        return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=True))

    def not_ready(self) -> list[str]:
        """Why the plugin is not ready (empty when it is)."""
        return [reason for check in self._readiness_checks if (reason := check())]

    def ready(self) -> bool:
        return not self.not_ready()
