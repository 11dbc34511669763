"""What the watch caches' events do: keep the GID bookkeeping current and queue work."""

from typing import TYPE_CHECKING, Final

from provisioner.controller import objects as o
from provisioner.controller.informer import object_key
from provisioner.kube.api import Obj

if TYPE_CHECKING:
    from provisioner.controller.controller import Controller

CLAIM: Final = "claim"
VOLUME: Final = "volume"


class ClaimHandler:
    def __init__(self, controller: "Controller") -> None:
        self._c = controller

    def on_add(self, obj: Obj) -> None:
        self._c.gids.observe_claim(obj)
        self._c.enqueue((CLAIM, object_key(obj)))

    def on_update(self, old: Obj, new: Obj) -> None:
        self.on_add(new)

    def on_delete(self, obj: Obj) -> None:
        self._c.writes.expectations.forget(object_key(obj))
        self._c.gids.claim_deleted(obj)
        self._c.claim_reconciler.forget(obj)


class VolumeHandler:
    def __init__(self, controller: "Controller") -> None:
        self._c = controller

    def on_add(self, obj: Obj) -> None:
        # every PV's GID counts as used, also those of other provisioners (e.g. the
        # in-tree glusterfs plugin's PVs on the same Heketi): no two volumes share one
        self._c.gids.observe_pv(obj)
        if o.is_ours_pv(obj, self._c.config.driver_name):
            self._c.enqueue((VOLUME, o.name(obj)))

    def on_update(self, old: Obj, new: Obj) -> None:
        self.on_add(new)
        if _storage(old) != _storage(new) and o.is_ours_pv(new, self._c.config.driver_name):
            # a claim whose status ran ahead of this PV's cached copy waits for it
            ref = (new.get("spec") or {}).get("claimRef") or {}
            if ref.get("namespace") and ref.get("name"):
                self._c.enqueue((CLAIM, f"{ref['namespace']}/{ref['name']}"))

    def on_delete(self, obj: Obj) -> None:
        self._c.gids.pv_deleted(obj)


class ClassHandler:
    def __init__(self, controller: "Controller") -> None:
        self._c = controller

    def on_add(self, obj: Obj) -> None:
        if obj.get("provisioner") == self._c.config.driver_name:
            self._c.enqueue_pending_claims(o.name(obj))

    def on_update(self, old: Obj, new: Obj) -> None:
        self.on_add(new)

    def on_delete(self, obj: Obj) -> None:
        return


def _storage(pv: Obj) -> object:
    return ((pv.get("spec") or {}).get("capacity") or {}).get("storage")
