"""The steps of migrating one PV, derived from what the cluster shows (pure).

`apply` never remembers where it was: each turn it reads the PV and the record on
its claim and takes the first remaining step, so a rerun after an interruption at
any point continues where the cluster is.
"""

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from provisioner.core import annotations
from provisioner.kube.api import Obj
from provisioner.migrate.cluster import (
    annotations_of,
    deleting,
    finalizers_of,
    name_of,
    phase_of,
    spec_of,
    uid_of,
)
from provisioner.migrate.intree import is_in_tree, is_migrated


class Step(Enum):
    RECORD = "record the in-tree PV and its CSI replacement on the claim"
    RETAIN = "set the in-tree PV's reclaim policy to Retain"
    DELETE = "delete the in-tree PV (the Gluster volume is not touched)"
    UNPROTECT = "lift the PV's kubernetes.io/pv-protection and pv-controller finalizers"
    WAIT_GONE = "wait until the in-tree PV is gone"
    CREATE = "create the CSI PV of the same name, claimRef with the claim's UID"
    WAIT_BOUND = "wait until the PV controller binds the claim again"


@dataclass(frozen=True)
class Record:
    """What RECORD wrote on the claim: the in-tree PV (its uid) and the CSI PV to create."""

    pv_name: str
    uid: str
    original: Obj
    target: Obj

    def to_json(self) -> str:
        doc = {
            "pv": self.pv_name,
            "uid": self.uid,
            "original": self.original,
            "target": self.target,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))


class RecordUnreadable(ValueError):
    """The claim's record annotation is not the JSON `migrate` writes."""


def record_of(claim: Obj | None) -> Record | None:
    raw = annotations_of(claim or {}).get(annotations.ANN_MIGRATION_RECORD)
    if not raw:
        return None
    try:
        doc: dict[str, Any] = json.loads(raw)
        record = Record(str(doc["pv"]), str(doc["uid"]), dict(doc["original"]), dict(doc["target"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordUnreadable(
            f"annotation {annotations.ANN_MIGRATION_RECORD} of the claim is not a migrate record"
        ) from exc
    return record


def sanitized(pv: Obj) -> Obj:
    """A PV as it can be created again: no server-set metadata, no status."""
    meta = {
        k: v
        for k, v in (pv.get("metadata") or {}).items()
        if k in ("name", "labels", "annotations")
    }
    kept = [f for f in finalizers_of(pv) if f not in annotations.KUBE_PV_FINALIZERS]
    if kept:
        meta["finalizers"] = kept
    spec = dict(spec_of(pv))
    if isinstance(spec.get("claimRef"), dict):
        spec["claimRef"] = {k: v for k, v in spec["claimRef"].items() if k != "resourceVersion"}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta, "spec": spec}


def claim_bound(claim: Obj | None, pv_name: str) -> bool:
    return (
        claim is not None
        and phase_of(claim) == "Bound"
        and spec_of(claim).get("volumeName") == pv_name
    )


def remaining(pv: Obj | None, record: Record | None, claim: Obj | None, driver: str) -> list[Step]:
    """The steps `apply` still has to take for this PV, in order ([] = done)."""
    if pv is None:
        return [Step.CREATE, Step.WAIT_BOUND] if record is not None else []
    if is_migrated(pv, driver):
        ref_uid = (spec_of(pv).get("claimRef") or {}).get("uid")
        if claim is None or uid_of(claim) != ref_uid:
            return []  # its claim was deleted since: nothing of ours left to finish
        if claim_bound(claim, name_of(pv)) and phase_of(pv) == "Bound":
            return []
        return [Step.WAIT_BOUND]
    if not is_in_tree(pv):
        return []
    steps: list[Step] = []
    if record is None or record.uid != uid_of(pv):
        steps.append(Step.RECORD)
    if not deleting(pv):
        if spec_of(pv).get("persistentVolumeReclaimPolicy") != "Retain":
            steps.append(Step.RETAIN)
        steps.append(Step.DELETE)
    if not deleting(pv) or set(annotations.KUBE_PV_FINALIZERS) & set(finalizers_of(pv)):
        steps.append(Step.UNPROTECT)
    return [*steps, Step.WAIT_GONE, Step.CREATE, Step.WAIT_BOUND]
