"""Drive one PV to its goal a step at a time, re-reading the cluster before each step.

Shared by `apply` and `rollback`: a `remaining` function says, from the PV, the record
on its claim and the claim, which steps are left; the first one is taken, then the
cluster is read again. Nothing is remembered between turns, so an interruption at any
point (crash, API error, Ctrl-C) leaves a state the next run starts from.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from provisioner import errors
from provisioner.kube.api import KubeConflict, Obj
from provisioner.log import get_logger
from provisioner.migrate.cluster import Cluster, pv_path, pvc_path
from provisioner.migrate.steps import Record, record_of

log = get_logger("migrate")

#: More turns than any path through the steps takes (a conflict costs one turn).
MAX_TURNS: Final = 30
#: Default --wait: how long to wait for a PV to go or a claim to be bound again.
DEFAULT_WAIT_SECONDS: Final = 120.0


@dataclass(frozen=True)
class State:
    pv: Obj | None
    claim: Obj | None
    record: Record | None


Say = Callable[[str], None]
#: Called after each step taken (tests interrupt a run here).
Checkpoint = Callable[[str, Enum], None]
Remaining = Callable[[State], list[Enum]]
Action = Callable[[Cluster, State], None]


def _no_checkpoint(pv: str, step: Enum) -> None:
    return None


def need(obj: Obj | None) -> Obj:
    """`obj`, which a step needs; FailedPrecondition if it went away under us."""
    if obj is None:
        raise errors.FailedPrecondition("an object went away while migrating; run again")
    return obj


@dataclass(frozen=True)
class Target:
    """The PV to drive and the claim whose annotation holds its record."""

    pv: str
    claim_namespace: str
    claim_name: str


@dataclass
class Converger:
    cluster: Cluster
    remaining: Remaining
    actions: Mapping[Enum, Action]
    say: Say
    checkpoint: Checkpoint = _no_checkpoint
    taken: list[Enum] = field(default_factory=list)

    def read(self, target: Target) -> State:
        pv = self.cluster.get(pv_path(target.pv))
        claim = self.cluster.get(pvc_path(target.claim_namespace, target.claim_name))
        record = record_of(claim)
        if record is not None and record.pv_name != target.pv:
            record = None
        return State(pv, claim, record)

    def run(self, target: Target) -> list[Enum]:
        """Take steps until none remain; the steps taken, in order."""
        self.taken = []
        for _ in range(MAX_TURNS):
            state = self.read(target)
            steps = self.remaining(state)
            if not steps:
                return self.taken
            step = steps[0]
            self.say(f"{target.pv}: {step.value}")
            try:
                self.actions[step](self.cluster, state)
            except KubeConflict:
                log.info("changed while we wrote; reading again", pv=target.pv, step=step.name)
                continue
            log.info("migration step done", pv=target.pv, step=step.name)
            self.taken.append(step)
            self.checkpoint(target.pv, step)
        raise errors.Internal(f"{target.pv}: no end after {MAX_TURNS} steps; run again")
