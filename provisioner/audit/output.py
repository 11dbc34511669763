"""The audit report as aligned tables or JSON."""

import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import TextIO

from provisioner.audit.findings import OrphanVolume, Report


def orphan_rows(orphans: Iterable[OrphanVolume]) -> list[list[str]]:
    rows = [["ID", "NAME", "SIZE", "GID", "CLAIM UID", "FIRST SEEN ORPHANED"]]
    for o in orphans:
        rows.append([o.id, o.name, f"{o.size_gib}Gi", str(o.gid), o.claim_uid, o.first_seen or "-"])
    return rows


def print_table(out: TextIO, title: str, rows: list[list[str]]) -> None:
    """A titled, column-aligned table; "(none)" when only the header row is present."""
    out.write(f"{title}:\n")
    if len(rows) == 1:
        out.write("  (none)\n\n")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")
    out.write("\n")


def write_report(report: Report, out: TextIO, *, output: str) -> None:
    if output == "json":
        doc = asdict(report)
        doc["heketi_url"] = report.heketi_url
        out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    print_table(
        out,
        f"Orphaned Heketi volumes on {report.heketi_url} (no PV, no claim)",
        orphan_rows(report.orphaned_volumes),
    )
    rows = [["PV", "VOLUME HANDLE", "CLAIM", "PHASE"]]
    rows += [[m.pv, m.volume_handle, m.claim, m.phase] for m in report.missing_volumes]
    print_table(out, "PVs whose Heketi volume is gone", rows)
    rows = [["CLAIM", "CLASS", "PENDING", "REASON", "MESSAGE"]]
    rows += [
        [p.claim, p.storage_class, _human_seconds(p.pending_seconds), p.reason, p.message]
        for p in report.pending_claims
    ]
    print_table(out, "Claims stuck pending", rows)
    rows = [["GID", "HELD BY"]]
    rows += [[str(c.gid), ", ".join(c.holders)] for c in report.gid_collisions]
    print_table(out, "GID collisions", rows)
    if report.deleted or report.waiting or report.delete_errors:
        print_table(out, "Deleted orphaned volumes", orphan_rows(report.deleted))
        print_table(out, "Orphans not yet old enough to delete", orphan_rows(report.waiting))
        rows = [["ERROR"]] + [[e] for e in report.delete_errors]
        print_table(out, "Deletions that failed", rows)


def _human_seconds(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m"
