"""The provisioning core: idempotent create / find / expand / delete of Heketi volumes.

Shared by the PVC controller and the CSI Controller service; knows nothing of
Kubernetes objects. Every operation is safe to repeat: a create looks the name
up first and again whenever its outcome is unknown, so one name never yields two
volumes; a delete of a missing volume succeeds; an expand to a size Heketi
already has makes no call. Operations on one name or id are serialised within
the process (the PVC controller's workers and concurrent CSI calls may overlap).
"""

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Final, Protocol

from provisioner import errors, names
from provisioner.expands import EarlierExpand, UnsettledExpands
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.errors import (
    HeketiNameInUse,
    HeketiNoSpace,
    HeketiNotFound,
    HeketiOutcomeUnknown,
)
from provisioner.heketi.placement import TagRule
from provisioner.heketi.types import (
    Volume,
    VolumeCreateRequest,
    describe_durability,
    is_heketi_id,
    same_durability,
)
from provisioner.heketi.volume_names import VolumeIdentity
from provisioner.locks import KeyedLocks
from provisioner.log import get_logger
from provisioner.placements import PlacementImpossible, placement_problem
from provisioner.storageclass import ProvisioningParams

log = get_logger("volumes")

GIB: Final = 1 << 30
#: Extra wait for a busy name/id beyond the Heketi operation deadline of its holder.
_LOCK_SLACK_S: Final = 5.0


class HeketiApi(Protocol):
    """The part of `HeketiClient` the core and its callers use (the seam tests replace)."""

    def find_volume_by_name(self, name: str) -> Volume | None: ...
    def create_volume(self, request: VolumeCreateRequest) -> Volume: ...
    def clone_volume(self, volume_id: str, *, name: str) -> Volume: ...
    def get_volume(self, volume_id: str) -> Volume: ...
    def get_volumes(self, volume_ids: Sequence[str]) -> list[Volume]: ...
    def list_volume_ids(self) -> list[str]: ...
    def list_volumes(self) -> list[Volume]: ...
    def volume_identities(self) -> dict[str, VolumeIdentity]: ...
    def free_space_gib(
        self, clusters: Sequence[str] = (), *, tag_rule: TagRule | None = None
    ) -> int: ...
    def placement_domains(
        self, clusters: Sequence[str] = (), *, tag_rule: TagRule | None = None, zones: bool = False
    ) -> int: ...
    def expand_volume(self, volume_id: str, *, add_gib: int) -> Volume: ...
    def poll_expand(self, queue_path: str) -> Volume | None: ...
    def operations_pending(self) -> int: ...
    def delete_volume(self, volume_id: str) -> None: ...


class VolumeNotFound(errors.NotFound):
    """No Heketi volume has this id."""


class VolumeCreationInProgress(errors.Aborted):
    """Heketi is still creating a volume of this name (another attempt's operation)."""


def size_gib(request_bytes: int) -> int:
    """Bytes → whole GiB, rounded up, at least 1 (Heketi sizes volumes in GiB)."""
    if request_bytes < 0:
        raise errors.InvalidArgument(f"requested size {request_bytes} bytes is negative")
    return max(1, math.ceil(request_bytes / GIB))


def volume_context(volume: Volume) -> dict[str, str]:
    """What NodeStageVolume needs to mount `volume` (PV volumeAttributes)."""
    servers = volume.hosts or (volume.device.split(":", 1)[0],)
    return {names.CTX_SERVERS: ",".join(servers), names.CTX_VOLUME: volume.name}


def heketi_config(params: ProvisioningParams, *, key: str | None) -> HeketiConfig:
    """Connection settings for the Heketi of a class; `key` from its Secret (or inline)."""
    return HeketiConfig(
        url=params.rest_url,
        user=params.rest_user,
        key=key if params.rest_auth_enabled else None,
        auth_enabled=params.rest_auth_enabled,
        ca_bundle=params.rest_ca_file,
    )


def clone_problem(source: Volume, params: ProvisioningParams, size_gib: int | None) -> None:
    """Refuse a clone of `source` that cannot be what the class and request ask for: a
    clone keeps its source's cluster, volumetype and GID and is at least its size."""
    if params.cluster_ids and source.cluster not in params.cluster_ids:
        raise errors.InvalidArgument(
            f"volume {source.name} is on Heketi cluster {source.cluster}, not one of the "
            f"StorageClass's 'clusterid' ({','.join(params.cluster_ids)}); a clone stays on its "
            "source's cluster"
        )
    if not same_durability(source.durability, params.durability):
        raise errors.InvalidArgument(
            f"volume {source.name} is {describe_durability(source.durability)}, the StorageClass "
            f"asks for {describe_durability(params.durability)}; a clone keeps its source's "
            "'volumetype': use a class with the same one"
        )
    if size_gib is not None and size_gib < source.size_gib:
        raise errors.OutOfRange(
            f"a clone of volume {source.name} needs at least {source.size_gib} GiB (the size of "
            f"its source), {size_gib} GiB were requested: request at least {source.size_gib}Gi"
        )


def create_request(
    *, name: str, size_gib: int, params: ProvisioningParams, gid: int
) -> VolumeCreateRequest:
    return VolumeCreateRequest(
        size_gib=size_gib,
        name=name,
        durability=params.durability,
        gid=gid,
        clusters=params.cluster_ids,
        gluster_volume_options=params.volume_options,
        snapshot_factor=params.snap_factor,
    )


class VolumeService:
    """Idempotent volume operations against any number of Heketi servers; `clients`
    gives the client of a connection (the process's `heketi.HeketiClients`): callers
    read through it what the core adds nothing to (listings, identities, free space)."""

    def __init__(
        self,
        *,
        clients: Callable[[HeketiConfig], HeketiApi],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self._clock = clock
        self._locks = KeyedLocks()
        self._unsettled = UnsettledExpands(clock=clock)

    def _hold(self, heketi: HeketiConfig, what: str, key: str) -> AbstractContextManager[None]:
        return self._locks.held(
            (heketi.url, what, key),
            timeout=heketi.operation_deadline + _LOCK_SLACK_S,
            busy_message=f"another operation on volume {key} is still running; retry later",
        )

    def ensure_volume(
        self,
        *,
        heketi: HeketiConfig,
        name: str,
        size_gib: int,
        params: ProvisioningParams,
        gid: int,
        unused_name: bool = False,
    ) -> Volume:
        """The volume called `name`, created if absent. An existing volume is returned
        as it is (callers compare its size with what they asked for).

        `unused_name`: the caller knows no earlier attempt can have used `name` (it
        recorded its intent just now, or listed every name just now under the name's
        lock), so the core skips the (whole-listing) lookup
        and creates at once — unless that create's outcome is unknown or the name
        turns out taken, when it looks the name up as for any other call.
        """
        client = self.clients(heketi)
        request = create_request(name=name, size_gib=size_gib, params=params, gid=gid)
        with self._hold(heketi, "name", name):
            if unused_name:
                try:
                    return self._create(client, heketi, request)
                except (HeketiOutcomeUnknown, HeketiNameInUse) as err:
                    log.info(
                        "create outcome unknown; looking the volume up", name=name, cause=str(err)
                    )
            existing = client.find_volume_by_name(name)
            if existing is not None:
                log.info("volume exists", heketi=heketi.url, name=name, volume_id=existing.id)
                return existing
            try:
                return self._create(client, heketi, request)
            except (HeketiOutcomeUnknown, HeketiNameInUse) as err:
                return self._settle_create(client, name, err)

    @staticmethod
    def _create(client: HeketiApi, heketi: HeketiConfig, request: VolumeCreateRequest) -> Volume:
        try:
            volume = client.create_volume(request)
        except HeketiNoSpace as err:
            problem = placement_problem(client, request)
            if problem is None:
                raise
            raise PlacementImpossible(f"{err}: {problem}") from err
        log.info("volume created", heketi=heketi.url, name=request.name, volume_id=volume.id)
        return volume

    def _settle_create(self, client: HeketiApi, name: str, err: Exception) -> Volume:
        """After a create with an unknown outcome or a name clash: find what Heketi made."""
        found = client.find_volume_by_name(name)
        if found is not None:
            log.info("volume found after create", name=name, volume_id=found.id, cause=str(err))
            return found
        if isinstance(err, HeketiNameInUse):
            raise VolumeCreationInProgress(
                f"Heketi is still creating volume {name} (an earlier attempt); retry later"
            ) from err
        raise err

    def ensure_clone(
        self,
        *,
        heketi: HeketiConfig,
        name: str,
        source_id: str,
        params: ProvisioningParams,
        size_gib: int | None,
        unused_name: bool = False,
    ) -> Volume:
        """The volume called `name`, cloned from volume `source_id` if absent (Heketi's
        clone: same cluster, size, volumetype and GID as the source), then grown to
        `size_gib` (None: the source's size). Idempotent by name as `ensure_volume`:
        a clone whose answer was lost is found by its name, never made twice.
        `VolumeNotFound` when the source does not exist; `clone_problem`'s refusals."""
        client = self.clients(heketi)
        with self._hold(heketi, "name", name):
            volume = None if unused_name else client.find_volume_by_name(name)
            if volume is None:
                volume = self._clone(client, heketi, name, source_id, params, size_gib)
            else:
                log.info("clone exists", heketi=heketi.url, name=name, volume_id=volume.id)
        if size_gib is not None and volume.size_gib < size_gib:
            volume = self.expand_volume(heketi=heketi, volume_id=volume.id, size_gib=size_gib)
        return volume

    def _clone(
        self,
        client: HeketiApi,
        heketi: HeketiConfig,
        name: str,
        source_id: str,
        params: ProvisioningParams,
        size_gib: int | None,
    ) -> Volume:
        source = self.get_volume(heketi=heketi, volume_id=source_id)
        clone_problem(source, params, size_gib)
        try:
            volume = client.clone_volume(source.id, name=name)
        except HeketiNotFound as err:  # deleted since it was read
            raise VolumeNotFound(f"Heketi has no volume {source_id} to clone") from err
        except (HeketiOutcomeUnknown, HeketiNameInUse) as err:
            return self._settle_create(client, name, err)
        log.info(
            "volume cloned", heketi=heketi.url, name=name, volume_id=volume.id, source_id=source.id
        )
        return volume

    def get_volume(self, *, heketi: HeketiConfig, volume_id: str) -> Volume:
        """The volume with this id; `VolumeNotFound` if none (also for a malformed id)."""
        if not is_heketi_id(volume_id):
            raise VolumeNotFound(f"volume id {volume_id!r} is not a Heketi volume id")
        try:
            return self.clients(heketi).get_volume(volume_id)
        except HeketiNotFound as err:
            raise VolumeNotFound(f"Heketi has no volume {volume_id}") from err

    def get_volumes(self, *, heketi: HeketiConfig, volume_ids: Sequence[str]) -> list[Volume]:
        """The volumes with these ids that still exist (malformed ids have none)."""
        wanted = [i for i in volume_ids if is_heketi_id(i)]
        return self.clients(heketi).get_volumes(wanted)

    def delete_volume(self, *, heketi: HeketiConfig, volume_id: str) -> None:
        """Delete the volume; a volume that does not exist (or a malformed id) is done."""
        if not is_heketi_id(volume_id):
            log.info("not a Heketi volume id: nothing to delete", volume_id=volume_id)
            return
        client = self.clients(heketi)
        with self._hold(heketi, "id", volume_id):
            try:
                client.delete_volume(volume_id)
            except HeketiNotFound:
                log.info("volume already gone", heketi=heketi.url, volume_id=volume_id)
                return
            except HeketiOutcomeUnknown:
                if self._exists(client, volume_id):
                    raise
            log.info("volume deleted", heketi=heketi.url, volume_id=volume_id)

    def expand_volume(
        self,
        *,
        heketi: HeketiConfig,
        volume_id: str,
        size_gib: int,
        earlier: EarlierExpand | None = None,
        before_send: Callable[[Volume], None] | None = None,
    ) -> Volume:
        """Grow the volume to at least `size_gib`; no call when it already has that size.

        After an expand with an unknown outcome no new one is sent until that one is
        known to have ended (see `provisioner.expands`): `ExpansionInProgress` until
        then. `earlier`: such an expand of a predecessor process, treated alike.
        `before_send` runs right before the expand is sent (with the volume as it is),
        e.g. to record durably that one may be running.
        """
        client = self.clients(heketi)
        with self._hold(heketi, "id", volume_id):
            if earlier is not None:
                self._unsettled.adopt(heketi, volume_id, earlier)
            volume = self.get_volume(heketi=heketi, volume_id=volume_id)
            if volume.size_gib >= size_gib:
                return volume
            if self._unsettled.settle(client, heketi, volume_id, size_now=volume.size_gib):
                volume = self.get_volume(heketi=heketi, volume_id=volume_id)
                if volume.size_gib >= size_gib:
                    return volume
            if before_send is not None:
                before_send(volume)
            return self._send_expand(client, heketi, volume_id, have=volume, want_gib=size_gib)

    def _send_expand(
        self,
        client: HeketiApi,
        heketi: HeketiConfig,
        volume_id: str,
        *,
        have: Volume,
        want_gib: int,
    ) -> Volume:
        """Expand `have` to `want_gib`; after an unknown outcome, done only if it grew."""
        try:
            volume = client.expand_volume(volume_id, add_gib=want_gib - have.size_gib)
        except HeketiOutcomeUnknown as err:
            volume = self._after_unknown_expand(heketi, volume_id, err, target=want_gib)
            if volume.size_gib < want_gib:
                raise
            self._unsettled.forget(heketi, volume_id)  # it grew: that expand ended
        log.info("volume expanded", volume_id=volume_id, size_gib=volume.size_gib)
        return volume

    def _after_unknown_expand(
        self, heketi: HeketiConfig, volume_id: str, err: HeketiOutcomeUnknown, *, target: int
    ) -> Volume:
        """Remember the expand as unsettled, then re-read the size; a failed re-read
        leaves the outcome unknown (the original error, not the read's)."""
        self._unsettled.remember(heketi, volume_id, err, target=target)
        try:
            return self.get_volume(heketi=heketi, volume_id=volume_id)
        except errors.ProvisionerError as read_error:
            raise err from read_error

    @staticmethod
    def _exists(client: HeketiApi, volume_id: str) -> bool:
        try:
            client.get_volume(volume_id)
        except HeketiNotFound:
            return False
        return True
