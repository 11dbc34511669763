"""What users do during the soak: create claims, grow them, delete them.

The ledger remembers every claim the soak made, the size it last asked for and
whether it deleted it: the invariants compare the system against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final

from testbed.chaos.api import ChangeFailed, KubeUser, claims_path
from testbed.chaos.cluster import APP_NAMESPACE, CLASS_NAME
from testbed.kube.server import KubeTestServer

#: Claims the workload keeps alive on average (creates outpace deletes below it).
TARGET_CLAIMS: Final = 30
#: Chances per one-second tick.
CREATE_CHANCE: Final = 0.3
EXPAND_CHANCE: Final = 0.12
DELETE_CHANCE: Final = 0.12
#: Sizes of new claims, GiB.
SIZES_GIB: Final = (1, 1, 2, 3)
#: Claims are not grown beyond this many GiB.
MAX_GIB: Final = 8


@dataclass
class Claim:
    name: str
    uid: str
    size_gib: int
    deleted: bool = False
    tags: list[str] = field(default_factory=list)


@dataclass
class Ledger:
    claims: dict[str, Claim] = field(default_factory=dict)  # by name
    created: int = 0
    expanded: int = 0
    expand_refused: int = 0  # the API refused: the claim was not bound yet
    deleted: int = 0
    failed_changes: list[str] = field(default_factory=list)
    _counter: int = 0

    def next_name(self) -> str:
        self._counter += 1
        return f"claim-{self._counter:05d}"

    def live(self) -> list[Claim]:
        return sorted((c for c in self.claims.values() if not c.deleted), key=lambda c: c.name)


def claim_body(name: str, size_gib: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": APP_NAMESPACE},
        "spec": {
            "storageClassName": CLASS_NAME,
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": f"{size_gib}Gi"}},
        },
    }


class Workload:
    """User actions on claims; every choice comes from the seeded `rng`."""

    def __init__(self, *, user: KubeUser, kube: KubeTestServer, rng: random.Random) -> None:
        self.user, self.kube, self.rng = user, kube, rng
        self.ledger = Ledger()

    def tick(self) -> None:
        """One second of users: maybe a create, an expand, a delete."""
        live = self.ledger.live()
        roll = self.rng.random
        if roll() < CREATE_CHANCE * (2.0 if len(live) < TARGET_CLAIMS else 0.5):
            self.create()
        if live and roll() < EXPAND_CHANCE:
            self.expand(self.rng.choice(live))
        if len(live) > TARGET_CLAIMS // 2 and roll() < DELETE_CHANCE:
            self.delete(self.rng.choice(live))

    def create(self, *, tag: str = "") -> Claim | None:
        name, size = self.ledger.next_name(), self.rng.choice(SIZES_GIB)
        answer = self._change("POST", claims_path(APP_NAMESPACE), claim_body(name, size))
        if answer is not None and answer.status == 409:  # an earlier try created it
            answer = self._change("GET", claims_path(APP_NAMESPACE, name))
        if answer is None:
            return None
        if answer.status not in (200, 201):
            self.ledger.failed_changes.append(f"create {name}: {answer.status}")
            return None
        claim = Claim(name, answer.body["metadata"]["uid"], size, tags=[tag] if tag else [])
        self.ledger.claims[name] = claim
        self.ledger.created += 1
        return claim

    def expand(self, claim: Claim) -> bool:
        """Ask for one GiB more; False when the API refused (claim not bound yet)."""
        if claim.deleted or claim.size_gib >= MAX_GIB:
            return False
        size = claim.size_gib + 1
        patch = {"spec": {"resources": {"requests": {"storage": f"{size}Gi"}}}}
        answer = self._change("PATCH", claims_path(APP_NAMESPACE, claim.name), patch, merge=True)
        if answer is None:
            return False
        if answer.status == 422:
            self.ledger.expand_refused += 1
            return False
        if answer.status != 200:
            self.ledger.failed_changes.append(f"expand {claim.name}: {answer.status}")
            return False
        claim.size_gib = size
        self.ledger.expanded += 1
        return True

    def delete(self, claim: Claim) -> None:
        if claim.deleted:
            return
        answer = self._change("DELETE", claims_path(APP_NAMESPACE, claim.name))
        if answer is None:
            return
        if answer.status not in (200, 202, 404):
            self.ledger.failed_changes.append(f"delete {claim.name}: {answer.status}")
            return
        claim.deleted = True
        self.ledger.deleted += 1

    def bound(self, claim: Claim) -> bool:
        stored = self.kube.get("persistentvolumeclaims", claim.name, APP_NAMESPACE) or {}
        return (stored.get("status") or {}).get("phase") == "Bound"

    def _change(self, method: str, path: str, body: Any = None, *, merge: bool = False) -> Any:
        try:
            return self.user.call(method, path, body, merge=merge)
        except ChangeFailed as exc:
            self.ledger.failed_changes.append(str(exc))
            return None
