"""`apply --prune-endpoints`: delete Endpoints/Services no in-tree PV needs any more.

Only the in-tree provisioner's `glusterfs-dynamic-*` objects are pruned on their own;
hand-made ones (e.g. `glusterfs-cluster`) only when named with `--prune NS/NAME`.
An Endpoints object still named by an in-tree PV, or by the record of a migration
that has not finished, is kept.
"""

from collections.abc import Sequence

from provisioner.core import annotations
from provisioner.kube.api import path_for
from provisioner.migrate.cluster import Cluster, Snapshot, name_of, namespace_of, uid_of
from provisioner.migrate.converge import Say
from provisioner.migrate.intree import is_in_tree, source_of
from provisioner.migrate.steps import RecordUnreadable, record_of

Key = tuple[str, str]


def in_use(snapshot: Snapshot, *, migrated: frozenset[str] = frozenset()) -> dict[Key, str]:
    """(namespace, name) of each Endpoints object still needed → the PV needing it.
    PVs named in `migrated` count as migrated already (a dry run's preview)."""
    used: dict[Key, str] = {}
    for pv in snapshot.pvs:
        if is_in_tree(pv) and name_of(pv) not in migrated:
            source = source_of(pv)
            used[(source.endpoints_namespace, source.endpoints_name)] = source.name
    for claim in snapshot.claims:
        try:
            record = record_of(claim)
        except RecordUnreadable:
            continue
        current = snapshot.pv(record.pv_name) if record is not None else None
        pending = current is None or (is_in_tree(current) and name_of(current) not in migrated)
        if record is not None and pending:
            source = source_of(record.original)
            used[(source.endpoints_namespace, source.endpoints_name)] = source.name
    return used


def candidates(snapshot: Snapshot, *, dynamic: bool, named: Sequence[Key]) -> list[Key]:
    found = [
        (namespace_of(ep), name_of(ep))
        for ep in snapshot.endpoints
        if dynamic and name_of(ep).startswith(annotations.IN_TREE_DYNAMIC_ENDPOINTS_PREFIX)
    ]
    return found + [key for key in named if key not in found]


def prune(
    cluster: Cluster,
    *,
    dynamic: bool,
    named: Sequence[Key],
    dry_run: bool,
    say: Say,
    migrated: frozenset[str] = frozenset(),
) -> list[Key]:
    """Delete unused Endpoints and their Services; returns what was (or would be) deleted.
    A dry run passes the PVs it would have migrated as `migrated`."""
    snapshot = cluster.snapshot()
    used = in_use(snapshot, migrated=migrated if dry_run else frozenset())
    pruned: list[Key] = []
    for namespace, name in candidates(snapshot, dynamic=dynamic, named=named):
        if (namespace, name) in used:
            say(f"Endpoints {namespace}/{name}: kept, PV {used[(namespace, name)]} uses it")
            continue
        verb = "would delete" if dry_run else "delete"
        say(f"Endpoints {namespace}/{name}: {verb} it and its Service")
        if not dry_run:
            _delete(cluster, "endpoints", namespace, name)
            _delete(cluster, "services", namespace, name)
        pruned.append((namespace, name))
    return pruned


def _delete(cluster: Cluster, plural: str, namespace: str, name: str) -> None:
    path = path_for(plural=plural, namespace=namespace, name=name)
    current = cluster.get(path)
    if current is not None:
        cluster.delete(path, uid=uid_of(current))
