"""Plan as a table for people, or JSON with a stable schema (docs/migration.md)."""

import json
from collections.abc import Sequence
from typing import Any, Final, TextIO

from provisioner.migrate.plan import Plan, Row

#: `-o json` schema identifier; bump on an incompatible change.
PLAN_SCHEMA: Final = "glusterfs.csi.heketi.io/migrate-plan/v1"
_COLUMNS: Final = (
    "PV",
    "CLAIM",
    "KIND",
    "SERVERS",
    "VOLUME",
    "HEKETI ID",
    "GID",
    "POLICY",
    "ACCESS",
    "STATE",
)


def row_json(row: Row) -> dict[str, Any]:
    return {
        "pv": row.pv,
        "claim": row.claim,
        "kind": row.kind,
        "servers": list(row.servers),
        "volume": row.volume,
        "heketiVolumeId": row.heketi_id or None,
        "gid": int(row.gid) if row.gid.isdigit() else None,
        "reclaimPolicy": row.reclaim_policy,
        "accessModes": list(row.access_modes),
        "mountOptions": list(row.mount_options),
        "readOnly": row.read_only,
        "state": row.state,
        "actions": list(row.actions),
        "blockers": list(row.blockers),
        "notes": list(row.notes),
        "tls": row.tls,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "schema": PLAN_SCHEMA,
        "volumes": [row_json(r) for r in plan.volumes],
        "storageClasses": [
            {"name": c.name, "default": c.default, "twin": c.twin, "problem": c.problem or None}
            for c in plan.classes
        ],
    }


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.pv,
        row.claim or "-",
        row.kind,
        ",".join(row.servers) or "-",
        row.volume or "-",
        row.heketi_id or "-",
        row.gid or "-",
        row.reclaim_policy,
        ",".join(row.access_modes) + (" (ro)" if row.read_only else ""),
        row.state,
    )


def table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for line in (header, *rows):
        out.write("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip())
        out.write("\n")


def write_plan(plan: Plan, out: TextIO, *, output: str) -> None:
    if output == "json":
        out.write(json.dumps(plan_json(plan), indent=2, sort_keys=True) + "\n")
        return
    if not plan.volumes:
        out.write("No in-tree GlusterFS PersistentVolumes.\n")
    else:
        table(out, _COLUMNS, [_cells(r) for r in plan.volumes])
    for row in plan.volumes:
        for blocker in row.blockers:
            out.write(f"{row.pv}: BLOCKED: {blocker}\n")
        for note in row.notes:
            out.write(f"{row.pv}: note: {note}\n")
        for number, action in enumerate(row.actions, start=1):
            out.write(f"{row.pv}: {number}. {action}\n")
    if plan.classes:
        out.write("\n")
        table(
            out,
            ("STORAGECLASS (in-tree)", "DEFAULT", "CSI TWIN", "PROBLEM"),
            [
                (c.name, "yes" if c.default else "no", c.twin, c.problem or "-")
                for c in plan.classes
            ],
        )
