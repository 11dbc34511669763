"""Which volume a claim clones: its `dataSource`/`dataSourceRef` naming a claim.

A claim whose data source is another PersistentVolumeClaim in the same namespace is
provisioned as a clone of that claim's Heketi volume (Heketi's `POST
/volumes/{id}/clone`, through the provisioning core). The source must be Bound to a
PV of this driver on the Heketi the claim's class uses. Each way it can fall short
is an error whose message says what to change; the claim is retried with backoff,
since the source may yet be created or bound.
"""

from dataclasses import dataclass
from typing import Any, Final

from provisioner import errors
from provisioner.controller import objects as o
from provisioner.controller.informer import Informer
from provisioner.core import annotations
from provisioner.core.storageclass import ProvisioningParams
from provisioner.heketi.types import is_heketi_id
from provisioner.kube.api import Obj

#: The only data source kind this provisioner can fill a claim from.
CLAIM_KIND: Final = "PersistentVolumeClaim"


class CloneSourceUnusable(errors.FailedPrecondition):
    """The claim's source claim cannot be cloned (yet); the message says why."""


@dataclass(frozen=True)
class CloneSource:
    """The Bound claim a claim clones, and its volume."""

    claim: str  # namespace/name
    volume_id: str  # the Heketi volume id (the PV's volumeHandle)
    gid: int | None  # the source PV's pv.beta.kubernetes.io/gid


def data_source(pvc: Obj) -> dict[str, Any] | None:
    """`dataSourceRef` (which may name a namespace), else `dataSource`; None without one."""
    spec = pvc.get("spec") or {}
    source = spec.get("dataSourceRef") or spec.get("dataSource")
    return dict(source) if isinstance(source, dict) else None


def source_problem(pvc: Obj) -> str | None:
    """Why no data source of this claim can ever be used (the fields are immutable)."""
    source = data_source(pvc)
    if source is None:
        return None
    kind, group = source.get("kind", ""), source.get("apiGroup") or ""
    if kind != CLAIM_KIND or group:
        what = f"{group}/{kind}" if group else kind
        return (
            f"a data source of kind {what} is not supported: this provisioner clones "
            f"claims only (dataSource kind {CLAIM_KIND}); make a new claim without it"
        )
    namespace = source.get("namespace")
    if namespace and namespace != o.namespace(pvc):
        return (
            f"the source claim {namespace}/{source.get('name', '')} is in another namespace; "
            f"a claim can clone only a claim of its own namespace ({o.namespace(pvc)})"
        )
    return None


class CloneSources:
    """Finds and checks the source claim of a clone in the controller's caches."""

    def __init__(self, *, claims: Informer, pvs: Informer, driver: str) -> None:
        self._claims = claims
        self._pvs = pvs
        self._driver = driver

    def of(self, pvc: Obj, params: ProvisioningParams) -> CloneSource | None:
        """The claim's source, None if it has no data source; `CloneSourceUnusable`.
        Once the claim's intent records the source volume (`ANN_CLONE_OF`) that one is
        used: the source claim may be gone by then, its volume cloned already."""
        source = data_source(pvc)
        if source is None:
            return None
        recorded = o.annotations_of(pvc).get(annotations.ANN_CLONE_OF, "")
        if annotations.PVC_FINALIZER in o.finalizers(pvc) and is_heketi_id(recorded):
            return CloneSource(claim="", volume_id=recorded, gid=o.claim_gid(pvc))
        ref = f"{o.namespace(pvc)}/{source.get('name', '')}"
        claim = self._claims.get(ref)
        if claim is None:
            raise CloneSourceUnusable(
                f"the source claim {ref} (spec.dataSource) does not exist; create it, "
                "or make a new claim with another source"
            )
        pv = self._bound_pv(ref, claim)
        self._check_pv(ref, pv, params)
        return CloneSource(claim=ref, volume_id=o.volume_handle(pv), gid=o.pv_gid(pv))

    def _bound_pv(self, ref: str, claim: Obj) -> Obj:
        phase = (claim.get("status") or {}).get("phase") or "Pending"
        pv_name = (claim.get("spec") or {}).get("volumeName") or ""
        pv = self._pvs.get(pv_name) if pv_name else None
        if phase != "Bound" or pv is None:
            raise CloneSourceUnusable(
                f"the source claim {ref} is not Bound (phase {phase}); the clone is made once it is"
            )
        return pv

    def _check_pv(self, ref: str, pv: Obj, params: ProvisioningParams) -> None:
        pv_name = o.name(pv)
        if not o.is_ours_pv(pv, self._driver):
            raise CloneSourceUnusable(
                f"the source claim {ref} is bound to PV {pv_name}, which is not a volume of "
                f"{self._driver}; only its volumes can be cloned: choose another source"
            )
        if not is_heketi_id(o.volume_handle(pv)):
            raise CloneSourceUnusable(
                f"PV {pv_name} of the source claim {ref} is not a Heketi volume "
                f"(volumeHandle {o.volume_handle(pv)!r}); it cannot be cloned"
            )
        url = o.annotations_of(pv).get(annotations.ANN_HEKETI_URL, "")
        if url != params.rest_url:
            raise CloneSourceUnusable(
                f"the source claim {ref} lives on Heketi {url or '(unknown)'}, the "
                f"StorageClass uses {params.rest_url}; a clone is made on its source's "
                "Heketi: use a class with that 'resturl'"
            )
