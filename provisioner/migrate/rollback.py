"""`migrate rollback --pv NAME`: the recorded in-tree PV back in place of the CSI PV
(for clusters still on Kubernetes ≤ 1.25, where the in-tree plugin mounts it).

Same care as apply: the CSI PV is set to Retain before it is deleted (our controller
keeps the Heketi volume of a Retain PV), its finalizers are lifted, the recorded PV is
created with the claim's UID, and the record is removed from the claim last.
"""

import contextlib
import functools
from dataclasses import dataclass
from enum import Enum
from typing import Final

from provisioner import errors
from provisioner.core import annotations
from provisioner.kube.api import KubeAlreadyExists, Obj, path_for
from provisioner.migrate.apply import RETAIN, Outcome
from provisioner.migrate.cluster import (
    Cluster,
    deleting,
    finalizers_of,
    phase_of,
    pv_path,
    pvc_path,
    spec_of,
    uid_of,
)
from provisioner.migrate.converge import (
    Action,
    Checkpoint,
    Converger,
    Say,
    State,
    Target,
    _no_checkpoint,
    need,
)
from provisioner.migrate.intree import is_in_tree, is_migrated
from provisioner.migrate.steps import Record, claim_bound, record_of

_LIFTED: Final = (annotations.PV_FINALIZER, annotations.PV_PROTECTION_FINALIZER)


class Back(Enum):
    RESTORE_POLICY = "give the in-tree PV its recorded reclaim policy back"
    RETAIN = "set the CSI PV's reclaim policy to Retain"
    DELETE = "delete the CSI PV (the Gluster volume is not touched)"
    UNPROTECT = "lift the CSI PV's finalizers (ours and kubernetes.io/pv-protection)"
    WAIT_GONE = "wait until the CSI PV is gone"
    CREATE = "create the recorded in-tree PV, claimRef with the claim's UID"
    WAIT_BOUND = "wait until the PV controller binds the claim again"
    CLEAR_RECORD = "remove the record from the claim"


def _policy(pv: Obj) -> str:
    return str(spec_of(pv).get("persistentVolumeReclaimPolicy", ""))


def remaining_back(state: State, driver: str) -> list[Back]:
    record, pv = state.record, state.pv
    if record is None:
        return []
    if pv is None:
        return [Back.CREATE, Back.WAIT_BOUND, Back.CLEAR_RECORD]
    if is_in_tree(pv):
        steps = []
        if uid_of(pv) == record.uid and _policy(pv) != _policy(record.original):
            steps.append(Back.RESTORE_POLICY)
        if uid_of(pv) != record.uid and not claim_bound(state.claim, record.pv_name):
            steps.append(Back.WAIT_BOUND)
        return [*steps, Back.CLEAR_RECORD]
    if not is_migrated(pv, driver):
        return []
    steps = []
    if not deleting(pv):
        steps += [Back.RETAIN] if _policy(pv) != "Retain" else []
        steps.append(Back.DELETE)
    if not deleting(pv) or set(finalizers_of(pv)) & set(_LIFTED):
        steps.append(Back.UNPROTECT)
    return [*steps, Back.WAIT_GONE, Back.CREATE, Back.WAIT_BOUND, Back.CLEAR_RECORD]


def rollback(
    cluster: Cluster,
    pv_name: str,
    *,
    driver: str,
    wait_seconds: float,
    dry_run: bool,
    say: Say,
    checkpoint: Checkpoint = _no_checkpoint,
) -> Outcome:
    target = _target(cluster, pv_name)
    converger = Converger(cluster, lambda s: list(remaining_back(s, driver)), {}, say, checkpoint)
    state = converger.read(target)
    if state.record is None:
        if state.pv is not None and is_in_tree(state.pv):
            return Outcome(pv_name, True, "an in-tree PV already: nothing to roll back")
        return Outcome(
            pv_name,
            False,
            f"claim {target.claim_namespace}/{target.claim_name} "
            "holds no migrate record of this PV: nothing to roll back",
        )
    if dry_run:
        for step in remaining_back(state, driver):
            say(f"{pv_name}: would {step.value}")
        return Outcome(pv_name, True, "dry run: nothing written")
    converger.actions = _actions(pv_name, wait_seconds)
    try:
        converger.run(target)
    except errors.ProvisionerError as exc:
        return Outcome(pv_name, False, f"{exc} (run rollback again to continue)")
    return Outcome(pv_name, True, "rolled back to the in-tree PV")


def _target(cluster: Cluster, pv_name: str) -> Target:
    """Where the record is: the claim the PV names, else a claim holding a record of it."""
    pv = cluster.get(pv_path(pv_name))
    ref = spec_of(pv or {}).get("claimRef") or {}
    if ref.get("name"):
        return Target(pv_name, str(ref.get("namespace", "")), str(ref["name"]))
    for claim in cluster.list(path_for(plural="persistentvolumeclaims")):
        record = record_of(claim)
        if record is not None and record.pv_name == pv_name:
            meta = claim["metadata"]
            return Target(pv_name, str(meta["namespace"]), str(meta["name"]))
    raise errors.NotFound(f"PV {pv_name} does not exist and no claim holds a record of it")


def need_record(state: State) -> Record:
    if state.record is None:
        raise errors.FailedPrecondition("the claim's record went away while rolling back")
    return state.record


def _claim_path(claim: Obj) -> str:
    return pvc_path(str(claim["metadata"]["namespace"]), str(claim["metadata"]["name"]))


@dataclass(frozen=True)
class _Job:
    pv: str
    wait: float

    @property
    def path(self) -> str:
        return pv_path(self.pv)


def _restore_policy(job: _Job, cluster: Cluster, state: State) -> None:
    policy = _policy(need_record(state).original)
    cluster.api.merge_patch(job.path, {"spec": {"persistentVolumeReclaimPolicy": policy}})


def _retain(job: _Job, cluster: Cluster, state: State) -> None:
    cluster.api.merge_patch(job.path, RETAIN)


def _delete(job: _Job, cluster: Cluster, state: State) -> None:
    cluster.delete(job.path, uid=uid_of(need(state.pv)))


def _unprotect(job: _Job, cluster: Cluster, state: State) -> None:
    pv = need(state.pv)
    kept = [f for f in finalizers_of(pv) if f not in _LIFTED]
    patch = {
        "metadata": {
            "finalizers": kept or None,
            "resourceVersion": pv["metadata"]["resourceVersion"],
        }
    }
    cluster.api.merge_patch(job.path, patch)


def _wait_gone(job: _Job, cluster: Cluster, state: State) -> None:
    uid = uid_of(state.pv or {})
    cluster.wait_for(
        f"deletion of the CSI PV {job.pv}",
        lambda: uid_of(cluster.get(job.path) or {}) != uid,
        timeout=job.wait,
    )


def _create(job: _Job, cluster: Cluster, state: State) -> None:
    with contextlib.suppress(KubeAlreadyExists):
        cluster.api.create(path_for(plural="persistentvolumes"), need_record(state).original)


def _wait_bound(job: _Job, cluster: Cluster, state: State) -> None:
    claim = _claim_path(need(state.claim))
    cluster.wait_for(
        f"claim bound again to the in-tree PV {job.pv}",
        lambda: (
            claim_bound(cluster.get(claim), job.pv)
            and phase_of(cluster.get(job.path) or {}) == "Bound"
        ),
        timeout=job.wait,
    )


def _clear_record(job: _Job, cluster: Cluster, state: State) -> None:
    cluster.annotate(_claim_path(need(state.claim)), {annotations.ANN_MIGRATION_RECORD: None})


_STEPS: Final = {
    Back.RESTORE_POLICY: _restore_policy,
    Back.RETAIN: _retain,
    Back.DELETE: _delete,
    Back.UNPROTECT: _unprotect,
    Back.WAIT_GONE: _wait_gone,
    Back.CREATE: _create,
    Back.WAIT_BOUND: _wait_bound,
    Back.CLEAR_RECORD: _clear_record,
}


def _actions(pv_name: str, wait: float) -> dict[Enum, Action]:
    job = _Job(pv_name, wait)
    return {step: functools.partial(act, job) for step, act in _STEPS.items()}
