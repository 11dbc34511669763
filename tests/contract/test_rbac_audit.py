"""deploy/'s RBAC against a real kube-apiserver's audit log of a `make contract-kube` run
(`CONTRACT_AUDIT_LOG`, skipped when unset): each service account was granted exactly what
it used. The comparison itself is checked here on small logs written by hand."""

import json
import os
from pathlib import Path

import pytest

from testbed.clusters import ACCOUNTS
from tests.contract.rbac_audit import account_user, compare, granted, main, read_log


def _event(account: str, verb: str, resource: str, *, group: str = "", code: int = 200,
           sub: str = "", stage: str = "ResponseComplete") -> str:  # fmt: skip
    ref = {"resource": resource, "apiGroup": group, "namespace": "a", "name": "x"}
    if sub:
        ref["subresource"] = sub
    return json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": stage,
                       "verb": verb, "user": {"username": account_user(account)},
                       "objectRef": ref, "responseStatus": {"code": code}})  # fmt: skip


def _every_grant_of(account: str) -> list[str]:
    lines = []
    for group, resource, verb in sorted(granted(account)):
        name, _, sub = resource.partition("/")
        lines.append(_event(account, verb, name, group=group, sub=sub))
    return lines


def test_an_account_that_used_every_grant_and_nothing_else_has_none_missing_or_unused() -> None:
    result = compare(list(read_log(_every_grant_of("controller"))), "controller")
    assert (result.missing, result.unused) == (set(), set())
    assert ("", "persistentvolumeclaims/status", "patch") in result.used


def test_a_grant_never_used_is_reported_unused() -> None:
    lines = [line for line in _every_grant_of("migrate") if '"verb": "delete"' not in line]
    result = compare(list(read_log(lines)), "migrate")
    assert ("", "persistentvolumes", "delete") in result.unused
    assert result.missing == set()


def test_a_refused_request_and_a_request_beyond_the_grants_are_reported_missing() -> None:
    lines = [
        _event("controller", "update", "persistentvolumeclaims", code=403),
        _event("controller", "list", "secrets", code=403),
        _event("node", "get", "nodes", code=403),
    ]
    events = list(read_log(lines))
    assert compare(events, "controller").missing == {
        ("", "persistentvolumeclaims", "update"),
        ("", "secrets", "list"),
    }
    assert compare(events, "node").missing == {("", "nodes", "get")}


def test_a_403_that_rbac_allowed_is_no_missing_grant() -> None:
    """NamespaceLifecycle refuses a create in a namespace being deleted with 403 too; the
    audit annotation says RBAC allowed it."""
    allowed, refused = (
        json.loads(_event("controller", "create", "events", code=403)) for _ in range(2)
    )
    allowed["annotations"] = {"authorization.k8s.io/decision": "allow"}
    refused["annotations"] = {"authorization.k8s.io/decision": "forbid"}
    found = compare(list(read_log([json.dumps(allowed)])), "controller")
    assert ("", "events", "create") not in found.missing
    assert ("", "events", "create") in found.used
    assert compare(list(read_log([json.dumps(refused)])), "controller").missing == {
        ("", "events", "create")
    }


def test_other_users_and_unfinished_stages_are_not_counted() -> None:
    lines = [
        _event("controller", "get", "secrets", stage="RequestReceived"),
        json.dumps({"stage": "ResponseComplete", "verb": "get", "user": {"username": "admin"},
                    "objectRef": {"resource": "secrets"}, "responseStatus": {"code": 200}}),
    ]  # fmt: skip
    assert compare(list(read_log(lines)), "controller").used == {}


@pytest.mark.skipif(not os.environ.get("CONTRACT_AUDIT_LOG"), reason="no CONTRACT_AUDIT_LOG")
def test_deploy_grants_each_account_exactly_what_it_used_on_the_real_cluster(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main([str(Path(os.environ["CONTRACT_AUDIT_LOG"]))])
    summary = capsys.readouterr().out
    print(summary)
    assert code == 0, summary
    assert set(ACCOUNTS) <= {line.split(":")[0] for line in summary.splitlines()}
