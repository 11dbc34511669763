"""The fault catalogue (kinds, rates, parameter ranges) and the seeded fault plan.

The plan is drawn from the seed alone, before anything runs: `--seed N` replays
the same faults, with the same parameters, at the same offsets into the run.
What the system does in between depends on timing (two cores shared with other
work), so a replay repeats the schedule, not every interleaving.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

Params = dict[str, float | int | str]


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault: where it strikes, how often, what it does."""

    name: str
    area: str  # controller, heketi, kube, claims, node
    per_minute: float
    what: str


@dataclass(frozen=True)
class PlannedFault:
    at: float  # seconds after the start of the run
    kind: str
    params: Params = field(default_factory=dict)


CATALOGUE: Final = (
    FaultKind("controller_kill_leader", "controller", 0.5, "SIGKILL the leader, restart it"),
    FaultKind("controller_kill_standby", "controller", 0.4, "SIGKILL the standby, restart it"),
    FaultKind("lease_lost", "controller", 0.4, "another holder takes the leader's Lease"),
    FaultKind("leader_kill_mid_burst", "controller", 0.4, "5 new claims, then SIGKILL the leader"),
    FaultKind("heketi_500", "heketi", 1.0, "the next 1-4 Heketi requests answer 500"),
    FaultKind("heketi_drop_after_commit", "heketi", 1.2, "an operation runs, its answer is lost"),
    FaultKind("heketi_429_storm", "heketi", 0.4, "the next 10-40 Heketi requests answer 429"),
    FaultKind("heketi_latency_spike", "heketi", 0.3, "operations take 2-6 s for 10-30 s"),
    FaultKind("heketi_restart", "heketi", 0.5, "Heketi restarts with operations pending"),
    FaultKind("heketi_restart_mid_burst", "heketi", 0.4, "5 new claims, then Heketi restarts"),
    FaultKind("heketi_outage", "heketi", 0.3, "Heketi refuses connections for 3-12 s"),
    FaultKind("kube_watch_cut", "kube", 0.6, "every open watch stream is cut"),
    FaultKind("kube_410_gone", "kube", 0.4, "history compacted, watches cut: resumes get 410"),
    FaultKind("kube_409_conflict", "kube", 0.8, "the next 1-4 PV/PVC writes answer 409"),
    FaultKind("kube_500", "kube", 0.8, "the next 1-4 PV/PVC/Lease requests answer 500"),
    FaultKind("kube_slow", "kube", 0.3, "every API answer takes 0.3-1.5 s for 5-15 s"),
    FaultKind("claim_delete_mid_provision", "claims", 1.0, "a new claim is deleted at once"),
    FaultKind("claim_expand_mid_provision", "claims", 1.0, "a new claim is grown once bound"),
    FaultKind("claim_delete_mid_expand", "claims", 0.8, "a claim is deleted while it grows"),
    FaultKind("claim_expand_twice", "claims", 0.8, "a claim is grown again while it grows"),
    FaultKind("storageclass_delete_restore", "claims", 0.3, "the class is gone for 2-10 s"),
    FaultKind("secret_delete_restore", "claims", 0.3, "the Heketi key Secret is gone 2-10 s"),
    FaultKind("node_plugin_kill", "node", 0.3, "SIGKILL the node plugin, restart it"),
)
BY_NAME: Final = {kind.name: kind for kind in CATALOGUE}

#: Faults start after this many seconds (the system first settles into a routine).
WARMUP_S: Final = 5.0


def _params(kind: str, rng: random.Random) -> Params:
    """The random parameters of one fault (counts, durations, targets)."""
    draw: dict[str, Params] = {
        "heketi_500": {"count": rng.randint(1, 4)},
        "heketi_drop_after_commit": {
            "op": rng.choice(["volume_create", "volume_expand", "volume_delete", "queue_get"])
        },
        "heketi_429_storm": {"count": rng.randint(10, 40)},
        "heketi_latency_spike": {
            "latency_s": round(rng.uniform(2, 6), 1),
            "for_s": round(rng.uniform(10, 30), 1),
        },
        "heketi_outage": {"for_s": round(rng.uniform(3, 12), 1)},
        "kube_409_conflict": {"count": rng.randint(1, 4), "verb": rng.choice(["update", "patch"])},
        "kube_500": {"count": rng.randint(1, 4)},
        "kube_slow": {
            "latency_s": round(rng.uniform(0.3, 1.5), 2),
            "for_s": round(rng.uniform(5, 15), 1),
        },
        "claim_delete_mid_provision": {"after_s": round(rng.uniform(0, 1.5), 2)},
        "claim_delete_mid_expand": {"after_s": round(rng.uniform(0, 1.5), 2)},
        "claim_expand_twice": {"after_s": round(rng.uniform(0, 1.5), 2)},
        "storageclass_delete_restore": {"for_s": round(rng.uniform(2, 10), 1)},
        "secret_delete_restore": {"for_s": round(rng.uniform(2, 10), 1)},
        "controller_kill_leader": {"restart_after_s": round(rng.uniform(0.5, 5), 1)},
        "controller_kill_standby": {"restart_after_s": round(rng.uniform(0.5, 5), 1)},
        "node_plugin_kill": {"restart_after_s": round(rng.uniform(0.5, 3), 1)},
        "leader_kill_mid_burst": {
            "after_s": round(rng.uniform(0.1, 1.5), 2),
            "restart_after_s": round(rng.uniform(0.5, 5), 1),
        },
        "heketi_restart_mid_burst": {"after_s": round(rng.uniform(0.1, 1.5), 2)},
    }
    return draw.get(kind, {})


def make_plan(*, seed: int, duration_s: float, intensity: float = 1.0) -> list[PlannedFault]:
    """Every kind once (shuffled, spread over the run), then each kind at its rate.

    Arrivals of a kind are a Poisson process (exponential gaps) at its rate times
    `intensity`.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible by design, not for secrets
    start, end = WARMUP_S, duration_s
    if end <= start:
        return []
    planned: list[PlannedFault] = []
    kinds = [kind.name for kind in CATALOGUE]
    rng.shuffle(kinds)
    step = (end - start) / len(kinds)
    for index, name in enumerate(kinds):
        at = start + step * index + rng.uniform(0, step)
        planned.append(PlannedFault(round(at, 2), name, _params(name, rng)))
    for kind in CATALOGUE:
        per_second = kind.per_minute * intensity / 60
        at = start + rng.expovariate(per_second)
        while at < end:
            planned.append(PlannedFault(round(at, 2), kind.name, _params(kind.name, rng)))
            at += rng.expovariate(per_second)
    return sorted(planned, key=lambda fault: (fault.at, fault.kind))
