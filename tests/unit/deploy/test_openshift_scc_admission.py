"""deploy/overlays/openshift/: both pods pass OpenShift's SecurityContextConstraints
(SCC) admission under the SCC each is meant to get (tests/unit/deploy/scc.py, with
the real `restricted-v2` and `privileged` definitions as data), and a manifest
change OpenShift would refuse fails here: the parametrized cases mutate the
controller's pod the way such a change would, and show what OpenShift defaults.
"""

from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.deploy.manifests import Obj, base_objects, find
from tests.unit.deploy.openshift_overlay import (
    ALLOCATION,
    CONTROLLER,
    DAEMONSET,
    DEPLOYMENT,
    UID_HIGH,
    UID_LOW,
    admit,
    pod_of,
    sccs_usable_by,
)


def test_the_controller_is_admitted_under_restricted_v2_with_a_uid_from_the_namespace() -> None:
    errors, pod = admit(DEPLOYMENT, "restricted-v2")
    assert errors == []
    context = pod["spec"]["securityContext"]
    assert context["fsGroup"] == UID_LOW
    assert context["seLinuxOptions"] == {"level": ALLOCATION.mcs}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    for item in pod["spec"]["containers"]:
        assert UID_LOW <= item["securityContext"]["runAsUser"] <= UID_HIGH
        assert item["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_the_base_controller_with_its_fixed_uid_would_be_refused() -> None:
    base = find(base_objects(), "Deployment", CONTROLLER)
    errors, _ = admit(base, "restricted-v2")
    assert errors == [
        "spec.containers[0].securityContext.runAsUser: Invalid value: 65532: "
        f"must be in the ranges: [{UID_LOW}, {UID_HIGH}]"
    ]


def test_the_node_plugin_is_admitted_under_privileged_as_root_unchanged() -> None:
    errors, pod = admit(DAEMONSET, "privileged")
    assert errors == []
    assert sccs_usable_by(pod["spec"]["serviceAccountName"]) == {"privileged"}
    assert pod["spec"]["containers"] == pod_of(DAEMONSET)["spec"]["containers"]
    assert pod["spec"]["securityContext"] == {}


def test_the_node_plugin_needs_more_than_restricted_v2() -> None:
    errors, _ = admit(DAEMONSET, "restricted-v2")
    joined = "\n".join(errors)
    for reason in (
        "spec.containers[0].securityContext.privileged: Invalid value: true: "
        "Privileged containers are not allowed",
        "spec.securityContext.hostNetwork: Invalid value: true: Host network is not allowed",
        "spec.securityContext.hostPID: Invalid value: true: Host PID is not allowed",
        'spec.volumes[0]: Invalid value: "hostPath": hostPath volumes are not allowed',
        "spec.containers[0].securityContext.hostPort: Invalid value: 9838: Host ports are not",
        "spec.containers[0].securityContext.runAsUser: Invalid value: 0: must be in the ranges",
        "spec.containers[0].securityContext.allowPrivilegeEscalation: Invalid value: true: ",
    ):
        assert reason in joined


def _set(*path: str | int, value: Any) -> Callable[[Obj], None]:
    """A mutation of the pod spec: set the value at path (dicts created as needed)."""

    def mutate(spec: Obj) -> None:
        target: Any = spec
        for key in path[:-1]:
            target = target[key] if isinstance(key, int) else target.setdefault(key, {})
        target[path[-1]] = value

    return mutate


def _delete(*path: str | int) -> Callable[[Obj], None]:
    def mutate(spec: Obj) -> None:
        target: Any = spec
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


CONTAINER = ("containers", 0, "securityContext")
POD = ("securityContext",)

REFUSED = {
    "fixed-uid-on-the-pod": (
        _set(*POD, "runAsUser", value=65532),
        "runAsUser: Invalid value: 65532",
    ),
    "root": (_set(*CONTAINER, "runAsUser", value=0), "runAsUser: Invalid value: 0"),
    "uid-above-the-range": (
        _set(*CONTAINER, "runAsUser", value=UID_HIGH + 1),
        "must be in the ranges",
    ),
    "privileged": (
        _set(*CONTAINER, "privileged", value=True),
        "Privileged containers are not allowed",
    ),
    "privilege-escalation": (
        _set(*CONTAINER, "allowPrivilegeEscalation", value=True),
        "privilege escalation",
    ),
    "add-sys-admin": (
        _set(*CONTAINER, "capabilities", "add", value=["SYS_ADMIN"]),
        '"SYS_ADMIN": capability may not be added',
    ),
    "add-net-admin": (
        _set(*CONTAINER, "capabilities", "add", value=["NET_ADMIN"]),
        '"NET_ADMIN": capability may not be added',
    ),
    "host-network": (_set("hostNetwork", value=True), "Host network is not allowed"),
    "host-pid": (_set("hostPID", value=True), "Host PID is not allowed"),
    "host-ipc": (_set("hostIPC", value=True), "Host IPC is not allowed"),
    "host-port": (
        _set("containers", 0, "ports", 0, "hostPort", value=8080),
        "Host ports are not allowed",
    ),
    "host-path-volume": (
        _set("volumes", 0, value={"name": "tmp", "hostPath": {"path": "/tmp"}}),
        "hostPath volumes are not allowed",
    ),
    "nfs-volume": (
        _set("volumes", 0, value={"name": "tmp", "nfs": {"server": "x", "path": "/"}}),
        "nfs volumes are not allowed",
    ),
    "selinux-type": (
        _set(*POD, "seLinuxOptions", value={"level": ALLOCATION.mcs, "type": "spc_t"}),
        'seLinuxOptions.type: Invalid value: "spc_t": must be ',
    ),
    "selinux-level": (
        _set(*CONTAINER, "seLinuxOptions", value={"level": "s0:c1,c2"}),
        'seLinuxOptions.level: Invalid value: "s0:c1,c2": must be s0:c26,c10',
    ),
    "fs-group-outside-the-namespace": (
        _set(*POD, "fsGroup", value=1234),
        "1234 is not an allowed group",
    ),
    "unconfined-seccomp": (
        _set(*POD, "seccompProfile", value={"type": "Unconfined"}),
        "unconfined is not an allowed seccomp profile",
    ),
    "localhost-seccomp": (
        _set(
            *CONTAINER, "seccompProfile", value={"type": "Localhost", "localhostProfile": "x.json"}
        ),
        "localhost/x.json is not an allowed",
    ),
}


@pytest.mark.parametrize(("mutate", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_a_controller_change_restricted_v2_refuses_fails_here(
    mutate: Callable[[Obj], None], reason: str
) -> None:
    errors, _ = admit(DEPLOYMENT, "restricted-v2", mutate)
    assert any(reason in error for error in errors), errors


ADMITTED = {
    "no-capabilities-dropped": (
        _delete(*CONTAINER, "capabilities"),
        ("containers", 0, "securityContext", "capabilities"),
        {"add": [], "drop": ["ALL"]},
    ),
    "escalation-unset": (
        _delete(*CONTAINER, "allowPrivilegeEscalation"),
        ("containers", 0, "securityContext", "allowPrivilegeEscalation"),
        False,
    ),
    "seccomp-unset": (
        _delete(*POD, "seccompProfile"),
        ("securityContext", "seccompProfile"),
        {"type": "RuntimeDefault"},
    ),
    "fs-group-of-the-namespace": (
        _set(*POD, "fsGroup", value=UID_LOW),
        ("securityContext", "fsGroup"),
        UID_LOW,
    ),
    "any-supplemental-groups": (
        _set(*POD, "supplementalGroups", value=[0, 1234]),
        ("securityContext", "supplementalGroups"),
        [0, 1234],
    ),
    "drop-only-kill": (
        _set(*CONTAINER, "capabilities", "drop", value=["KILL"]),
        ("containers", 0, "securityContext", "capabilities", "drop"),
        ["ALL", "KILL"],
    ),
    "net-bind-service": (
        _set(*CONTAINER, "capabilities", "add", value=["NET_BIND_SERVICE"]),
        ("containers", 0, "securityContext", "capabilities", "add"),
        ["NET_BIND_SERVICE"],
    ),
    "writable-root": (
        _set(*CONTAINER, "readOnlyRootFilesystem", value=False),
        ("containers", 0, "securityContext", "readOnlyRootFilesystem"),
        False,
    ),
    "uid-in-the-range": (
        _set(*CONTAINER, "runAsUser", value=UID_HIGH),
        ("containers", 0, "securityContext", "runAsUser"),
        UID_HIGH,
    ),
    "config-map-volume": (
        _set("volumes", 0, value={"name": "tmp", "configMap": {"name": "x"}}),
        ("volumes", 0, "configMap", "name"),
        "x",
    ),
}


@pytest.mark.parametrize(("mutate", "path", "admitted_as"), ADMITTED.values(), ids=ADMITTED.keys())
def test_a_controller_change_restricted_v2_admits_or_defaults_passes(
    mutate: Callable[[Obj], None], path: tuple[str | int, ...], admitted_as: Any
) -> None:
    errors, pod = admit(DEPLOYMENT, "restricted-v2", mutate)
    assert errors == []
    value: Any = pod["spec"]
    for key in path:
        value = value[key]
    assert value == admitted_as
