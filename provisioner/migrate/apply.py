"""`migrate apply`: each selected in-tree PV becomes a CSI PV of the same name.

Steps (see steps.Step), each derived from what the cluster shows:
1. record the in-tree PV and the CSI PV that will replace it on the claim (annotation),
   before anything is changed;
2. set the in-tree PV's reclaim policy to Retain (nothing may reclaim the volume while
   the PV is briefly gone);
3. delete the in-tree PV (uid precondition); 4. lift `kubernetes.io/pv-protection`,
   which kube-controller-manager keeps on a Bound PV, and `kubernetes.io/pv-controller`,
   which it keeps on a Heketi-made PV of policy Delete (Retain makes it moot);
5. wait until it is gone (the PV controller marks the claim Lost meanwhile: `ClaimLost`);
6. create the CSI PV with the same name and the claimRef (with the claim's UID);
7. wait until the PV controller binds the claim again (phase Bound, same UID).
"""

import contextlib
import functools
from dataclasses import dataclass
from enum import Enum
from typing import Final

from provisioner import errors
from provisioner.core import annotations
from provisioner.kube.api import KubeAlreadyExists, path_for
from provisioner.migrate.cluster import Cluster, name_of, phase_of, pv_path, pvc_path, uid_of
from provisioner.migrate.converge import (
    DEFAULT_WAIT_SECONDS,
    Action,
    Checkpoint,
    Converger,
    Say,
    State,
    Target,
    _no_checkpoint,
    need,
)
from provisioner.migrate.plan import BLOCKED, MIGRATED, Plan, Row
from provisioner.migrate.steps import Record, Step, claim_bound, remaining, sanitized

RETAIN: Final = {"spec": {"persistentVolumeReclaimPolicy": "Retain"}}


@dataclass(frozen=True)
class ApplySettings:
    driver: str = annotations.DRIVER_NAME
    dry_run: bool = False
    wait_seconds: float = DEFAULT_WAIT_SECONDS


@dataclass(frozen=True)
class Outcome:
    pv: str
    ok: bool
    message: str


def select(plan: Plan, wanted: tuple[str, ...] | None) -> tuple[list[Row], list[Outcome]]:
    """The rows to apply (all when `wanted` is None), and outcomes for unknown names."""
    if wanted is None:
        return list(plan.volumes), []
    rows, missing = [], []
    for pv in wanted:
        row = plan.row(pv)
        if row is None:
            missing.append(Outcome(pv, False, "not an in-tree GlusterFS PV (nor a migrated one)"))
        else:
            rows.append(row)
    return rows, missing


def apply(
    cluster: Cluster,
    rows: list[Row],
    settings: ApplySettings,
    *,
    say: Say,
    checkpoint: Checkpoint = _no_checkpoint,
) -> list[Outcome]:
    outcomes = []
    for row in rows:
        if row.state == BLOCKED:
            outcomes.append(Outcome(row.pv, False, "blocked: " + "; ".join(row.blockers)))
        elif row.state == MIGRATED:
            outcomes.append(Outcome(row.pv, True, "already migrated"))
        elif settings.dry_run:
            for action in row.actions:
                say(f"{row.pv}: would {action}")
            outcomes.append(Outcome(row.pv, True, "dry run: nothing written"))
        else:
            outcomes.append(_apply_one(cluster, row, settings, say=say, checkpoint=checkpoint))
    return outcomes


def _apply_one(
    cluster: Cluster, row: Row, settings: ApplySettings, *, say: Say, checkpoint: Checkpoint
) -> Outcome:
    namespace, _, claim = row.claim.partition("/")
    converger = Converger(
        cluster,
        remaining=lambda s: list(remaining(s.pv, s.record, s.claim, settings.driver)),
        actions=_actions(row, settings),
        say=say,
        checkpoint=checkpoint,
    )
    try:
        taken = converger.run(Target(row.pv, namespace, claim))
    except errors.ProvisionerError as exc:
        return Outcome(row.pv, False, f"{exc} (run apply again to continue)")
    return Outcome(row.pv, True, "migrated" if taken else "already migrated")


@dataclass(frozen=True)
class _Job:
    """What the step functions of one PV need besides the cluster and its state."""

    row: Row
    wait: float


def _record(job: _Job, cluster: Cluster, state: State) -> None:
    pv, claim = need(state.pv), need(state.claim)
    if job.row.target is None:
        raise errors.FailedPrecondition(f"{job.row.pv}: no CSI PV planned")
    doc = Record(job.row.pv, uid_of(pv), sanitized(pv), job.row.target).to_json()
    path = pvc_path(claim["metadata"]["namespace"], name_of(claim))
    cluster.annotate(path, {annotations.ANN_MIGRATION_RECORD: doc})


def _retain(job: _Job, cluster: Cluster, state: State) -> None:
    pv = need(state.pv)
    patch = {**RETAIN, "metadata": {"resourceVersion": pv["metadata"]["resourceVersion"]}}
    cluster.api.merge_patch(pv_path(job.row.pv), patch)


def _delete(job: _Job, cluster: Cluster, state: State) -> None:
    cluster.delete(pv_path(job.row.pv), uid=uid_of(need(state.pv)))


def _unprotect(job: _Job, cluster: Cluster, state: State) -> None:
    path = pv_path(job.row.pv)
    pv = need(state.pv)
    for finalizer in annotations.KUBE_PV_FINALIZERS:
        cluster.remove_finalizer(path, pv, finalizer)
        pv = cluster.get(path) or pv


def _wait_gone(job: _Job, cluster: Cluster, state: State) -> None:
    uid = uid_of(need(state.pv))
    cluster.wait_for(
        f"deletion of the in-tree PV {job.row.pv}",
        lambda: uid_of(cluster.get(pv_path(job.row.pv)) or {}) != uid,
        timeout=job.wait,
    )


def _create(job: _Job, cluster: Cluster, state: State) -> None:
    if state.record is None:
        raise errors.FailedPrecondition(f"{job.row.pv}: the claim holds no record")
    with contextlib.suppress(KubeAlreadyExists):
        cluster.api.create(path_for(plural="persistentvolumes"), state.record.target)


def _wait_bound(job: _Job, cluster: Cluster, state: State) -> None:
    claim = need(state.claim)
    path = pvc_path(claim["metadata"]["namespace"], name_of(claim))
    cluster.wait_for(
        f"claim {job.row.claim} Bound to the CSI PV {job.row.pv} (is kube-controller-manager "
        "running? nothing is lost: the CSI PV exists)",
        lambda: (
            claim_bound(cluster.get(path), job.row.pv)
            and phase_of(cluster.get(pv_path(job.row.pv)) or {}) == "Bound"
        ),
        timeout=job.wait,
    )


_STEPS: Final = {
    Step.RECORD: _record,
    Step.RETAIN: _retain,
    Step.DELETE: _delete,
    Step.UNPROTECT: _unprotect,
    Step.WAIT_GONE: _wait_gone,
    Step.CREATE: _create,
    Step.WAIT_BOUND: _wait_bound,
}


def _actions(row: Row, settings: ApplySettings) -> dict[Enum, Action]:
    job = _Job(row, settings.wait_seconds)
    return {step: functools.partial(act, job) for step, act in _STEPS.items()}
