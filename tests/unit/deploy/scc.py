"""OpenShift's SecurityContextConstraints (SCC) admission of one pod under one SCC.

A model, for the pod templates in deploy/, of what OpenShift's kube-apiserver
does (openshift/apiserver-library-go, pkg/securitycontextconstraints, commit
a8019f39f6708878cbb42101693940ed4817ab82; file/function named at each step):

1. the SCC's pre-allocated values come from the namespace's annotations
   (sccmatching/matcher.go CreateProviderFromConstraint);
2. the pod's and then each container's security context is defaulted from the
   SCC (sccmatching/provider.go CreatePodSecurityContext,
   CreateContainerSecurityContext) — on create, SCC admission may mutate;
3. both are validated (ValidatePodSecurityContext, ValidateContainerSecurityContext);
   any error refuses the pod under this SCC.

Validation, with the real messages, is in scc_validation.py. Not modelled (unused
in deploy/): sysctls, flexVolumes, hostUsers, ephemeral containers, seccomp annotations.
"""

import copy
from dataclasses import dataclass

from tests.unit.deploy.scc_validation import (
    RUNTIME_DEFAULT,
    Obj,
    allowed_profiles,
    effective,
    pod_profile,
    validate_container,
    validate_pod,
)


@dataclass(frozen=True)
class Namespace:
    """What OpenShift's namespace controller allocates to a new namespace
    (security/v1 consts.go: UIDRangeAnnotation, SupplementalGroupsAnnotation,
    MCSAnnotation); the values are a typical allocation."""

    uid_range: str = "1000650000/10000"
    supplemental_groups: str = "1000650000/10000"
    mcs: str = "s0:c26,c10"


def parse_block(text: str) -> tuple[int, int]:
    """A UID/GID block, "start/size" or "start-end" (library-go security/uid ParseBlock)."""
    if "/" in text:
        start, size = (int(part) for part in text.split("/"))
        return start, start + size - 1
    start, end = (int(part) for part in text.split("-"))
    return start, end


def resolve(scc: Obj, namespace: Namespace) -> Obj:
    """The SCC with the namespace's pre-allocated values filled in (matcher.go
    CreateProviderFromConstraint): UID range, SELinux level, fsGroup (the first
    GID of the first block only) and supplemental group ranges."""
    scc = copy.deepcopy(scc)
    run_as_user = scc["runAsUser"]
    if run_as_user["type"] == "MustRunAsRange" and "uidRangeMin" not in run_as_user:
        run_as_user["uidRangeMin"], run_as_user["uidRangeMax"] = parse_block(namespace.uid_range)
    selinux = scc["seLinuxContext"]
    if selinux["type"] == "MustRunAs" and not selinux.get("seLinuxOptions", {}).get("level"):
        selinux.setdefault("seLinuxOptions", {})["level"] = namespace.mcs
    blocks = [parse_block(b) for b in namespace.supplemental_groups.split(",")]
    if scc["fsGroup"]["type"] == "MustRunAs" and not scc["fsGroup"].get("ranges"):
        scc["fsGroup"]["ranges"] = [{"min": blocks[0][0], "max": blocks[0][0]}]
    groups = scc["supplementalGroups"]
    if groups["type"] == "MustRunAs" and not groups.get("ranges"):
        groups["ranges"] = [{"min": low, "max": high} for low, high in blocks]
    return scc


def admit(pod: Obj, scc: Obj, namespace: Namespace) -> tuple[list[str], Obj]:
    """(reasons the SCC refuses the pod — [] when it admits it, the pod as admitted)
    (matcher.go AssignSecurityContext)."""
    scc = resolve(scc, namespace)
    pod = copy.deepcopy(pod)
    spec = pod["spec"]
    _default_pod(scc, spec)
    errors = validate_pod(scc, spec)
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind, [])):
            path = f"spec.{kind}[{index}].securityContext"
            _default_container(scc, spec, container)
            errors += validate_container(scc, spec, container, path)
    return errors, pod


def _default_pod(scc: Obj, spec: Obj) -> None:
    """CreatePodSecurityContext: generated values only where the pod sets none."""
    context = spec.setdefault("securityContext", {})
    supplemental = scc["supplementalGroups"]
    if "supplementalGroups" not in context and supplemental["type"] == "MustRunAs":
        context["supplementalGroups"] = [supplemental["ranges"][0]["min"]]
    if "fsGroup" not in context and scc["fsGroup"]["type"] == "MustRunAs":
        context["fsGroup"] = scc["fsGroup"]["ranges"][0]["min"]
    if "seLinuxOptions" not in context and scc["seLinuxContext"]["type"] == "MustRunAs":
        context["seLinuxOptions"] = dict(scc["seLinuxContext"]["seLinuxOptions"])
    profile = pod_profile(spec) or next(iter(allowed_profiles(scc)), "")
    if profile:
        context["seccompProfile"] = _profile_field(profile)


def _default_container(scc: Obj, spec: Obj, container: Obj) -> None:
    """CreateContainerSecurityContext."""
    context = container.setdefault("securityContext", {})
    pod_context = spec["securityContext"]
    run_as_user = effective(context, pod_context, "runAsUser")
    if run_as_user is None:
        run_as_user = _generate_uid(scc)
        if run_as_user is not None:
            context["runAsUser"] = run_as_user
    selinux = scc["seLinuxContext"]
    if effective(context, pod_context, "seLinuxOptions") is None and selinux["type"] == "MustRunAs":
        context["seLinuxOptions"] = dict(selinux["seLinuxOptions"])
    if effective(context, pod_context, "runAsNonRoot") is None and _implies_non_root(
        scc, run_as_user
    ):
        context["runAsNonRoot"] = True
    capabilities = _generate_capabilities(scc, context.get("capabilities"))
    if capabilities is not None:
        context["capabilities"] = capabilities
    if scc.get("readOnlyRootFilesystem") and "readOnlyRootFilesystem" not in context:
        context["readOnlyRootFilesystem"] = True
    if scc.get("allowPrivilegeEscalation") is False and "allowPrivilegeEscalation" not in context:
        context["allowPrivilegeEscalation"] = False


def _implies_non_root(scc: Obj, run_as_user: int | None) -> bool:
    """provider.go: runAsNonRoot is set when the UID is non-zero, or when none is
    set and the SCC is MustRunAsNonRoot."""
    if run_as_user is None:
        return bool(scc["runAsUser"]["type"] == "MustRunAsNonRoot")
    return run_as_user > 0


def _generate_uid(scc: Obj) -> int | None:
    """user/*.go Generate: MustRunAsRange → the range's minimum, MustRunAs → the UID."""
    strategy = scc["runAsUser"]
    if strategy["type"] == "MustRunAsRange":
        return int(strategy["uidRangeMin"])
    if strategy["type"] == "MustRunAs":
        return int(strategy["uid"])
    return None


def _generate_capabilities(scc: Obj, current: Obj | None) -> Obj | None:
    """capabilities/mustrunas.go Generate: default adds (unless dropped) and
    required drops joined to the container's own."""
    add = set((current or {}).get("add") or [])
    drop = set((current or {}).get("drop") or [])
    default_add = set(scc.get("defaultAddCapabilities") or []) - drop
    required_drop = set(scc.get("requiredDropCapabilities") or [])
    if default_add <= add and required_drop <= drop:
        return current
    return {"add": sorted(default_add | add), "drop": sorted(required_drop | drop)}


def _profile_field(name: str) -> Obj:
    """provider.go seccompFieldForAnnotation."""
    if name == "unconfined":
        return {"type": "Unconfined"}
    if name in (RUNTIME_DEFAULT, "docker/default"):
        return {"type": "RuntimeDefault"}
    return {"type": "Localhost", "localhostProfile": name.removeprefix("localhost/")}
