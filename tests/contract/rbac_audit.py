"""Compare what deploy/'s RBAC grants each service account with what the account used,
as a real kube-apiserver's audit log records it.

Run the API server with an audit policy at level Metadata (e.g. run-kube.sh with
`KUBE_APISERVER_FLAGS="--audit-policy-file=P --audit-log-path=L"`), run `make
contract-kube KUBECONFIG=... KUBE_AUDIT_LOG=L` against it: it ends with::

    python -m tests.contract.rbac_audit L --from-byte <the log's size before the run>

which prints, per account, the grants used, the requests refused (missing grants) and the
grants never used; `tests/contract/test_rbac_audit.py` asserts both lists are empty when
`CONTRACT_AUDIT_LOG` names the log.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.clusters import ACCOUNTS, INSTALL_NS

#: (API group, resource or resource/subresource, verb), as RBAC rules name them.
Grant = tuple[str, str, str]
Obj = dict[str, Any]
FORBIDDEN = 403
#: The audit annotation with RBAC's answer ("allow" or "forbid"); a 403 it allowed came
#: from admission, e.g. a create in a namespace being deleted (NamespaceLifecycle).
DECISION = "authorization.k8s.io/decision"


def account_user(account: str) -> str:
    return f"system:serviceaccount:{INSTALL_NS}:{ACCOUNTS[account][0]}"


def granted(account: str) -> set[Grant]:
    """Every grant of the roles deploy/ binds to the account (in its manifests)."""
    name, manifests = ACCOUNTS[account]
    docs = [d for m in manifests for d in yaml.safe_load_all(m.read_text(encoding="utf-8")) if d]
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"].endswith("Role")}
    out: set[Grant] = set()
    for binding in (d for d in docs if d["kind"].endswith("RoleBinding")):
        if not any(s.get("kind") == "ServiceAccount" and s["name"] == name
                   for s in binding["subjects"]):  # fmt: skip
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        for rule in role["rules"]:
            out |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"]
                    for v in rule["verbs"]}  # fmt: skip
    return out


def _grant(event: Obj) -> Grant | None:
    ref = event.get("objectRef")
    if not ref or not ref.get("resource"):
        return None  # a non-resource URL (e.g. /version)
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return ref.get("apiGroup", ""), resource, event["verb"]


def read_log(lines: Iterable[str]) -> Iterator[Obj]:
    """The completed requests of an audit log (JSON lines, audit.k8s.io/v1 Events)."""
    for line in lines:
        if line.strip():
            event = json.loads(line)
            if event.get("stage") in ("ResponseComplete", "Panic"):
                yield event


@dataclass
class Usage:
    """What one account asked for: grants with their count, and the refused ones."""

    used: Counter[Grant] = field(default_factory=Counter)
    refused: set[Grant] = field(default_factory=set)


def _refused_by_rbac(event: Obj) -> bool:
    decision = (event.get("annotations") or {}).get(DECISION)
    if decision is not None:
        return bool(decision == "forbid")
    return bool((event.get("responseStatus") or {}).get("code") == FORBIDDEN)


def usage(events: Iterable[Obj], user: str) -> Usage:
    found = Usage()
    for event in events:
        if (event.get("impersonatedUser") or event.get("user") or {}).get("username") != user:
            continue
        grant = _grant(event)
        if grant is None:
            continue
        found.used[grant] += 1
        if _refused_by_rbac(event):
            found.refused.add(grant)
    return found


@dataclass(frozen=True)
class Comparison:
    account: str
    used: dict[Grant, int]
    missing: set[Grant]
    unused: set[Grant]


def compare(events: list[Obj], account: str) -> Comparison:
    seen, grants = usage(events, account_user(account)), granted(account)
    missing = seen.refused | {g for g in seen.used if g not in grants}
    return Comparison(account, dict(seen.used), missing, grants - set(seen.used))


def report(comparison: Comparison) -> str:
    def row(g: Grant) -> str:
        return f"{g[2]} {g[0] or 'core'}/{g[1]}"

    used = ", ".join(f"{row(g)} x{n}" for g, n in sorted(comparison.used.items()))
    lines = [f"{comparison.account}: used {used or 'nothing'}"]
    lines.append(f"  missing: {', '.join(sorted(map(row, comparison.missing))) or 'none'}")
    lines.append(f"  unused:  {', '.join(sorted(map(row, comparison.unused))) or 'none'}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`LOG [--from-byte N]`: the log's requests from byte N on (one run's, when N was
    the log's size before it: what `make contract-kube KUBE_AUDIT_LOG=...` passes)."""
    parser = argparse.ArgumentParser(prog="python -m tests.contract.rbac_audit")
    parser.add_argument("log", type=Path)
    parser.add_argument("--from-byte", type=int, default=0)
    args = parser.parse_args(argv)
    with args.log.open(encoding="utf-8") as stream:
        stream.seek(args.from_byte)
        events = list(read_log(stream))
    comparisons = [compare(events, account) for account in ACCOUNTS]
    print("\n".join(report(c) for c in comparisons))
    return 1 if any(c.missing or c.unused for c in comparisons) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
