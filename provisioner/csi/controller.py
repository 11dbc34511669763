"""CSI Controller service on the shared provisioning core (`provisioner.volumes`).

Lets the standard kubernetes-csi sidecars (external-provisioner, external-resizer)
or any CSI orchestrator create, delete, list and expand Heketi volumes. Each
handler reads top to bottom: validate (INVALID_ARGUMENT with an exact message) →
per-name / per-id lock (ABORTED when busy) → idempotent core call → response.
Which Heketi a call reaches and with which key: see `heketi_access`.
"""

import threading
from collections.abc import Iterable, Mapping
from typing import Final

import grpc
from google.protobuf import wrappers_pb2

from provisioner import errors, log, names
from provisioner.csi import csi_pb2, csi_pb2_grpc, validation
from provisioner.csi.controller_checks import (
    WantedCapacity,
    check_capabilities,
    check_clone_capacity,
    check_compatible,
    clone_source,
    wanted_capacity,
)
from provisioner.csi.heketi_access import (
    ClassParameters,
    HeketiDefaults,
    heketi_for_capacity,
    heketi_for_class,
    heketi_for_volume,
    split_parameters,
    volume_url,
    with_url,
)
from provisioner.csi.server import VolumeLocks
from provisioner.gids import GidAllocator
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.placement import InvalidTagRule, placement_of
from provisioner.heketi.types import Volume, describe_durability, is_heketi_id, same_durability
from provisioner.placements import raw_space_factor
from provisioner.storageclass import ProvisioningParams, parse_parameters
from provisioner.volume_naming import csi_volume_name, heketi_volume_name
from provisioner.volumes import GIB, VolumeService, volume_context

_log = log.get_logger("csi.controller")

_Rpc = csi_pb2.ControllerServiceCapability.RPC
#: Longest kept CSI name inside a `volumenameprefix` name, leaving room for the
#: prefix (<= 32), the namespace and the claim name within volume_naming.HEKETI_NAME_MAX.
_PREFIXED_NAME_MAX: Final = 64


def csi_context(volume: Volume) -> dict[str, str]:
    """volume_context of a volume: what NodeStageVolume needs, plus its GID."""
    context = volume_context(volume)
    if volume.gid:
        context[names.CTX_GID] = str(volume.gid)
    return context


def csi_volume(volume: Volume, *, cloned_from: str | None = None) -> csi_pb2.Volume:
    """The CSI volume; a clone names its source in `content_source` and `clone-of`."""
    context = csi_context(volume)
    if cloned_from is None:
        return csi_pb2.Volume(
            capacity_bytes=volume.size_gib * GIB, volume_id=volume.id, volume_context=context
        )
    context[names.CTX_CLONE_OF] = cloned_from
    source = csi_pb2.VolumeContentSource.VolumeSource(volume_id=cloned_from)
    return csi_pb2.Volume(
        capacity_bytes=volume.size_gib * GIB,
        volume_id=volume.id,
        volume_context=context,
        content_source=csi_pb2.VolumeContentSource(volume=source),
    )


class _GidReservations:
    """GIDs this process handed out, per Heketi URL (Heketi lists the others).

    A GID stays reserved once its volume exists: a create that listed Heketi's
    volumes before that volume appeared must still not pick it. Only a GID whose
    create failed, or found an older volume instead, is given back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, set[int]] = {}

    def reserve(self, url: str, used: Iterable[int], params: ProvisioningParams) -> int:
        with self._lock:
            pending = self._pending.setdefault(url, set())
            allocator = GidAllocator()
            for gid in (*used, *pending):
                allocator.mark_used(gid)
            gid = allocator.allocate(gid_min=params.gid_min, gid_max=params.gid_max)
            pending.add(gid)
            return gid

    def release(self, url: str, gid: int) -> None:
        with self._lock:
            self._pending.get(url, set()).discard(gid)


class ControllerService(csi_pb2_grpc.ControllerServicer):
    """CREATE_DELETE_VOLUME, EXPAND_VOLUME, SINGLE_NODE_MULTI_WRITER, CLONE_VOLUME, and
    with the plugin's own Heketi (`--heketi-url`) LIST_VOLUMES and GET_CAPACITY."""

    def __init__(
        self,
        *,
        volumes: VolumeService,
        heketi: HeketiDefaults,
        locks: VolumeLocks | None = None,
    ) -> None:
        self._volumes = volumes
        self._defaults = heketi
        self._id_locks = locks or VolumeLocks()
        self._name_locks = VolumeLocks()
        self._gids = _GidReservations()

    # --- capabilities -------------------------------------------------------------

    def capabilities(self) -> list[_Rpc.Type]:
        rpcs = [
            _Rpc.CREATE_DELETE_VOLUME,
            _Rpc.EXPAND_VOLUME,
            _Rpc.SINGLE_NODE_MULTI_WRITER,
            _Rpc.CLONE_VOLUME,
        ]
        if self._defaults.url is not None:
            rpcs += [_Rpc.LIST_VOLUMES, _Rpc.GET_CAPACITY]
        return rpcs

    def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.ControllerServiceCapability(rpc=_Rpc(type=rpc))
                for rpc in self.capabilities()
            ]
        )

    # --- CreateVolume -------------------------------------------------------------

    def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.CreateVolumeResponse:
        name = validation.required(request.name, "name")
        check_capabilities(request.volume_capabilities)
        source_id = clone_source(request)
        wanted = wanted_capacity(
            request.capacity_range if request.HasField("capacity_range") else None
        )
        split = split_parameters(request.parameters)
        secrets = dict(request.secrets)
        params = self._class_params(split, secrets)
        for warning in params.warnings:
            _log.warning("storage class parameter warning", name=name, warning=warning)
        heketi = heketi_for_class(params, secrets, self._defaults)
        heketi_name = _heketi_name(name, params, split)
        with self._name_locks.hold(name):
            if source_id is None:
                volume = self._ensure(heketi, heketi_name, wanted, params)
            else:
                volume = self._clone(heketi, heketi_name, wanted, params, source_id)
        check_compatible(name, volume, wanted, params)
        return csi_pb2.CreateVolumeResponse(volume=csi_volume(volume, cloned_from=source_id))

    def _clone(
        self,
        heketi: HeketiConfig,
        name: str,
        wanted: WantedCapacity,
        params: ProvisioningParams,
        source_id: str,
    ) -> Volume:
        """The clone of `source_id` called `name` (NOT_FOUND: no such source on this
        Heketi; OUT_OF_RANGE: the range cannot hold the source's size)."""
        source = self._volumes.get_volume(heketi=heketi, volume_id=source_id)
        check_clone_capacity(wanted, source)
        return self._volumes.ensure_clone(
            heketi=heketi,
            name=name,
            source_id=source.id,
            params=params,
            size_gib=wanted.gib if wanted.required_bytes else None,
        )

    def _ensure(
        self, heketi: HeketiConfig, name: str, wanted: WantedCapacity, params: ProvisioningParams
    ) -> Volume:
        known = self._volumes.clients(heketi).volume_identities()
        named = sorted(i for i, v in known.items() if v.name == name)
        found = self._volumes.get_volumes(heketi=heketi, volume_ids=named)
        if found:
            return found[0]
        gid = self._gids.reserve(heketi.url, (v.gid for v in known.values()), params)
        volume: Volume | None = None
        try:
            # `known` is a listing made just now under the name's lock: the core need not
            # list again (a name taken meanwhile still falls back to its lookup).
            volume = self._volumes.ensure_volume(
                heketi=heketi,
                name=name,
                size_gib=wanted.gib,
                params=params,
                gid=gid,
                unused_name=True,
            )
            return volume
        finally:
            if volume is None or volume.gid != gid:
                self._gids.release(heketi.url, gid)

    def _class_params(
        self, split: ClassParameters, secrets: Mapping[str, str]
    ) -> ProvisioningParams:
        """The class's parameters; `resturl` defaults to the URL the volume lives on."""
        return parse_parameters(with_url(split.parameters, volume_url(secrets, self._defaults)))

    # --- DeleteVolume -------------------------------------------------------------

    def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.DeleteVolumeResponse:
        volume_id = validation.required(request.volume_id, "volume_id")
        if not is_heketi_id(volume_id):
            _log.info("not a Heketi volume id: nothing to delete", volume_id=volume_id)
            return csi_pb2.DeleteVolumeResponse()
        heketi = heketi_for_volume(request.secrets, self._defaults)
        with self._id_locks.hold(volume_id):
            self._volumes.delete_volume(heketi=heketi, volume_id=volume_id)
        return csi_pb2.DeleteVolumeResponse()

    # --- ValidateVolumeCapabilities -------------------------------------------------

    def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        volume_id = validation.required(request.volume_id, "volume_id")
        if not request.volume_capabilities:
            raise errors.InvalidArgument("volume_capabilities is required")
        heketi = heketi_for_volume(request.secrets, self._defaults)
        volume = self._volumes.get_volume(heketi=heketi, volume_id=volume_id)
        reason = self._unsupported(request, volume)
        if reason is not None:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message=reason)
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    def _unsupported(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, volume: Volume
    ) -> str | None:
        """Why the volume cannot be used as asked, or None."""
        try:
            check_capabilities(request.volume_capabilities)
        except errors.InvalidArgument as err:
            return str(err)
        if request.mutable_parameters:
            return "mutable_parameters are not supported by this plugin"
        ours = csi_context(volume)
        asked = {k: v for k, v in request.volume_context.items() if k in names.CTX_KEYS}
        if any(ours.get(key) != value for key, value in asked.items()):
            return f"volume_context does not match volume {volume.id}: expected {ours}"
        if request.parameters:
            return self._parameters_mismatch(request.parameters, request.secrets, volume)
        return None

    def _parameters_mismatch(
        self, parameters: Mapping[str, str], secrets: Mapping[str, str], volume: Volume
    ) -> str | None:
        try:
            params = self._class_params(split_parameters(parameters), secrets)
        except errors.InvalidArgument as err:
            return str(err)
        if not same_durability(params.durability, volume.durability):
            return (
                f"volume {volume.id} is {describe_durability(volume.durability)}, "
                f"the parameters ask for {describe_durability(params.durability)}"
            )
        return None

    # --- ListVolumes ----------------------------------------------------------------

    def ListVolumes(
        self, request: csi_pb2.ListVolumesRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ListVolumesResponse:
        if request.max_entries < 0:
            raise errors.InvalidArgument("max_entries must not be negative")
        token = request.starting_token.lower()
        if token and not is_heketi_id(token):
            raise errors.Aborted(
                f"starting_token {request.starting_token!r} was not returned by this plugin; "
                "list again without a starting_token"
            )
        self._own_url("ListVolumes")
        heketi = heketi_for_volume({}, self._defaults)
        ids = sorted(
            i
            for i in (v.lower() for v in self._volumes.clients(heketi).list_volume_ids())
            if i >= token
        )
        limit = request.max_entries or len(ids)
        page, rest = ids[:limit], ids[limit:]
        volumes = self._volumes.get_volumes(heketi=heketi, volume_ids=page)  # gone ones left out
        return csi_pb2.ListVolumesResponse(
            entries=[csi_pb2.ListVolumesResponse.Entry(volume=csi_volume(v)) for v in volumes],
            next_token=rest[0] if rest else "",
        )

    def _own_url(self, method: str) -> str:
        if self._defaults.url is None:
            raise errors.FailedPrecondition(
                f"{method} needs the plugin's own Heketi: start it with --heketi-url"
            )
        return self._defaults.url

    # --- GetCapacity ------------------------------------------------------------------

    def GetCapacity(
        self, request: csi_pb2.GetCapacityRequest, context: grpc.ServicerContext
    ) -> csi_pb2.GetCapacityResponse:
        url = self._own_url("GetCapacity")
        try:
            if request.volume_capabilities:
                check_capabilities(request.volume_capabilities)
        except errors.InvalidArgument:
            return csi_pb2.GetCapacityResponse(available_capacity=0)
        split = split_parameters(request.parameters)
        params = parse_parameters(with_url(split.parameters, url))
        heketi = heketi_for_capacity(params, self._defaults)
        try:
            tag_rule = placement_of(params.volume_options).tag_rule()
        except InvalidTagRule:
            return csi_pb2.GetCapacityResponse(available_capacity=0)  # Heketi refuses them all
        raw_gib = self._volumes.clients(heketi).free_space_gib(
            params.cluster_ids, tag_rule=tag_rule
        )
        return csi_pb2.GetCapacityResponse(
            available_capacity=int(raw_gib / raw_space_factor(params)) * GIB,
            minimum_volume_size=wrappers_pb2.Int64Value(value=GIB),
        )

    # --- ControllerExpandVolume -------------------------------------------------------

    def ControllerExpandVolume(
        self, request: csi_pb2.ControllerExpandVolumeRequest, context: grpc.ServicerContext
    ) -> csi_pb2.ControllerExpandVolumeResponse:
        volume_id = validation.required(request.volume_id, "volume_id")
        if not request.HasField("capacity_range"):
            raise errors.InvalidArgument("capacity_range is required")
        wanted = wanted_capacity(request.capacity_range)
        if request.HasField("volume_capability"):
            validation.mount_capability(request.volume_capability, present=True)
        heketi = heketi_for_volume(request.secrets, self._defaults)
        with self._id_locks.hold(volume_id):
            volume = self._volumes.expand_volume(
                heketi=heketi, volume_id=volume_id, size_gib=wanted.gib
            )
        if not wanted.fits(volume):
            raise errors.OutOfRange(
                f"volume {volume_id} already has {volume.size_gib} GiB, more than "
                f"capacity_range.limit_bytes ({wanted.limit_bytes}); volumes cannot shrink"
            )
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=volume.size_gib * GIB, node_expansion_required=False
        )


def _heketi_name(name: str, params: ProvisioningParams, split: ClassParameters) -> str:
    """Heketi volume name of a CSI name, with the class's `volumenameprefix` if any."""
    if params.volume_name_prefix is None:
        return csi_volume_name(name)
    return heketi_volume_name(
        uid=csi_volume_name(name, max_length=_PREFIXED_NAME_MAX),
        namespace=split.claim_namespace,
        claim=split.claim_name,
        prefix=params.volume_name_prefix,
    )
