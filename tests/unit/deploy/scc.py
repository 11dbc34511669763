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

Messages are the real ones, prefixed with the field path. Not modelled (unused
in deploy/): sysctls, flexVolumes, hostUsers, ephemeral containers, seccomp annotations.
"""

import copy
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

RUNTIME_DEFAULT = "runtime/default"
#: security/v1 FSTypeAll, AllowAllCapabilities; seccomp/strategy.go allowAnyProfile.
ANY = "*"


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
    errors = _validate_pod(scc, spec)
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind, [])):
            path = f"spec.{kind}[{index}].securityContext"
            _default_container(scc, spec, container)
            errors += _validate_container(scc, spec, container, path)
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
    profile = _pod_profile(spec) or next(iter(_allowed_profiles(scc)), "")
    if profile:
        context["seccompProfile"] = _profile_field(profile)


def _default_container(scc: Obj, spec: Obj, container: Obj) -> None:
    """CreateContainerSecurityContext."""
    context = container.setdefault("securityContext", {})
    pod_context = spec["securityContext"]
    run_as_user = _effective(context, pod_context, "runAsUser")
    if run_as_user is None:
        run_as_user = _generate_uid(scc)
        if run_as_user is not None:
            context["runAsUser"] = run_as_user
    selinux = scc["seLinuxContext"]
    if (
        _effective(context, pod_context, "seLinuxOptions") is None
        and selinux["type"] == "MustRunAs"
    ):
        context["seLinuxOptions"] = dict(selinux["seLinuxOptions"])
    if _effective(context, pod_context, "runAsNonRoot") is None and _implies_non_root(
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


def _validate_pod(scc: Obj, spec: Obj) -> list[str]:
    """ValidatePodSecurityContext."""
    context = spec["securityContext"]
    path = "spec.securityContext"
    fs_group = [context["fsGroup"]] if "fsGroup" in context else []
    errors = _validate_groups(scc["fsGroup"], fs_group, f"{path}.fsGroup")
    errors += _validate_groups(
        scc["supplementalGroups"],
        context.get("supplementalGroups", []),
        f"{path}.supplementalGroups",
    )
    errors += _validate_profile(scc, _pod_profile(spec), "pod seccomp profile")
    errors += _validate_selinux(scc, context.get("seLinuxOptions"), f"{path}.seLinuxOptions")
    errors += _validate_host_namespaces(scc, spec, path)
    return errors + _validate_volumes(scc, spec.get("volumes", []))


def _validate_container(scc: Obj, spec: Obj, container: Obj, path: str) -> list[str]:
    """ValidateContainerSecurityContext."""
    context = container["securityContext"]
    pod_context = spec["securityContext"]
    errors = _validate_user(
        scc,
        _effective(context, pod_context, "runAsNonRoot"),
        _effective(context, pod_context, "runAsUser"),
        path,
    )
    selinux = _effective(context, pod_context, "seLinuxOptions")
    errors += _validate_selinux(scc, selinux, f"{path}.seLinuxOptions")
    errors += _validate_profile(scc, _container_profile(spec, container), f"{path}.seccomp")
    if context.get("privileged") and not scc["allowPrivilegedContainer"]:
        errors.append(f"{path}.privileged: Privileged containers are not allowed")
    errors += _validate_capabilities(scc, context.get("capabilities"), path)
    errors += _validate_host_namespaces(scc, spec, path)
    if not scc["allowHostPorts"] and any(p.get("hostPort") for p in container.get("ports", [])):
        errors.append(f"{path}.hostPort: Host ports are not allowed to be used")
    if scc.get("readOnlyRootFilesystem") and context.get("readOnlyRootFilesystem") is not True:
        errors.append(f"{path}.readOnlyRootFilesystem: ReadOnlyRootFilesystem must be set to true")
    escalation = context.get("allowPrivilegeEscalation")
    if scc.get("allowPrivilegeEscalation") is False and escalation is not False:
        errors.append(
            f"{path}.allowPrivilegeEscalation: "
            "Allowing privilege escalation for containers is not allowed"
        )
    return errors


def _validate_user(scc: Obj, non_root: bool | None, uid: int | None, path: str) -> list[str]:
    """user/mustrunasrange.go, mustrunas.go, nonroot.go, runasany.go Validate."""
    strategy = scc["runAsUser"]
    kind = strategy["type"]
    if kind in ("MustRunAsRange", "MustRunAs") and uid is None:
        return [f"{path}.runAsUser: Required value"]
    if kind == "MustRunAsRange":
        low, high = int(strategy["uidRangeMin"]), int(strategy["uidRangeMax"])
        if uid is not None and not low <= uid <= high:
            return [
                f"{path}.runAsUser: Invalid value: {uid}: must be in the ranges: [{low}, {high}]"
            ]
    if kind == "MustRunAs" and uid != strategy["uid"]:
        return [f"{path}.runAsUser: Invalid value: {uid}: must be: {strategy['uid']}"]
    if kind == "MustRunAsNonRoot":
        if non_root is None and uid is None:
            return [f"{path}.runAsNonRoot: Required value: must be true"]
        if non_root is False:
            return [f"{path}.runAsNonRoot: Invalid value: false: must be true"]
        if uid == 0:
            return [f"{path}.runAsUser: Invalid value: 0: running with the root UID is forbidden"]
    return []


def _validate_groups(strategy: Obj, groups: list[int], path: str) -> list[str]:
    """group/mustrunas.go Validate (RunAsAny accepts anything)."""
    if strategy["type"] != "MustRunAs":
        return []
    if not groups:
        return [f"{path}: unable to validate empty groups against required ranges"]
    ranges = strategy["ranges"]
    return [
        f"{path}: {group} is not an allowed group"
        for group in groups
        if not any(r["min"] <= group <= r["max"] for r in ranges)
    ]


def _validate_selinux(scc: Obj, options: Obj | None, path: str) -> list[str]:
    """selinux/mustrunas.go Validate: the level (categories in any order), role,
    type and user must be the SCC's (empty unless the SCC sets them)."""
    if scc["seLinuxContext"]["type"] != "MustRunAs":
        return []
    if options is None:
        return [f"{path}: Required value"]
    expected = scc["seLinuxContext"]["seLinuxOptions"]
    errors = []
    if not _equal_levels(expected.get("level", ""), options.get("level", "")):
        errors.append(f"{path}.level: must be {expected.get('level', '')}")
    for key in ("role", "type", "user"):
        if options.get(key, "") != expected.get(key, ""):
            errors.append(f"{path}.{key}: must be {expected.get(key, '')}")
    return errors


def _equal_levels(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    want, got = expected.split(":", 1), actual.split(":", 1)
    if len(want) != 2 or len(got) != 2 or want[0] != got[0]:
        return False
    return sorted(want[1].split(",")) == sorted(got[1].split(","))


def _validate_capabilities(scc: Obj, capabilities: Obj | None, path: str) -> list[str]:
    """capabilities/mustrunas.go Validate."""
    default_add = set(scc.get("defaultAddCapabilities") or [])
    required_drop = scc.get("requiredDropCapabilities") or []
    if capabilities is None:
        if default_add or required_drop:
            return [
                f"{path}.capabilities: required capabilities are not set on the securityContext"
            ]
        return []
    allowed = set(scc.get("allowedCapabilities") or [])
    if ANY in allowed:
        return []
    errors = [
        f"{path}.capabilities.add: Invalid value: {cap}: capability may not be added"
        for cap in capabilities.get("add") or []
        if cap not in default_add | allowed
    ]
    drops = set(capabilities.get("drop") or [])
    errors += [
        f"{path}.capabilities.drop: {cap} is required to be dropped but was not found"
        for cap in required_drop
        if cap not in drops
    ]
    return errors


def _validate_host_namespaces(scc: Obj, spec: Obj, path: str) -> list[str]:
    errors = []
    for field, allowed, name in (
        ("hostNetwork", "allowHostNetwork", "Host network"),
        ("hostPID", "allowHostPID", "Host PID"),
        ("hostIPC", "allowHostIPC", "Host IPC"),
    ):
        if spec.get(field) and not scc[allowed]:
            errors.append(f"{path}.{field}: {name} is not allowed to be used")
    return errors


def _validate_volumes(scc: Obj, volumes: list[Obj]) -> list[str]:
    """Each volume's type (util.go GetVolumeFSType: the pod API's field name) must
    be in the SCC's volumes, unless it allows all; a projected volume of only the
    service account token's sources passes where secret volumes do."""
    allowed = set(scc["volumes"])
    if ANY in allowed:
        return []
    errors = []
    for index, volume in enumerate(volumes):
        (kind,) = [key for key in volume if key != "name"]
        token_only = kind == "projected" and _only_token_sources(volume["projected"])
        if kind not in allowed and not ("secret" in allowed and token_only):
            errors.append(f"spec.volumes[{index}]: {kind} volumes are not allowed to be used")
    return errors


def _only_token_sources(projected: Obj) -> bool:
    """util.go IsOnlyServiceAccountTokenSources (what the ServiceAccount admission adds)."""
    for source in projected.get("sources", []):
        token = source.get("serviceAccountToken")
        if token is not None and (token.get("path") != "token" or token.get("audience")):
            return False
        config_map = source.get("configMap")
        if config_map is not None and config_map.get("name") != "kube-root-ca.crt":
            return False
        if token is None and config_map is None and "downwardAPI" not in source:
            return False
    return True


def _allowed_profiles(scc: Obj) -> list[str]:
    return [p for p in scc.get("seccompProfiles") or [] if p != ANY]


def _validate_profile(scc: Obj, profile: str, path: str) -> list[str]:
    """strategy.go validateProfile."""
    allow_any = ANY in (scc.get("seccompProfiles") or [])
    allowed = _allowed_profiles(scc)
    if not allow_any and not allowed and profile:
        return [f"{path}: Forbidden: seccomp may not be set"]
    if allow_any or (not allowed and not profile):
        return []
    runtime_default = any(p in (RUNTIME_DEFAULT, "docker/default") for p in allowed)
    if profile in allowed or (runtime_default and profile in (RUNTIME_DEFAULT, "docker/default")):
        return []
    return [
        f"{path}: Forbidden: {profile} is not an allowed seccomp profile. "
        f"Valid values are [{' '.join(allowed)}]"
    ]


def _pod_profile(spec: Obj) -> str:
    return _profile_name(spec.get("securityContext", {}).get("seccompProfile") or {})


def _container_profile(spec: Obj, container: Obj) -> str:
    field = container.get("securityContext", {}).get("seccompProfile")
    return _profile_name(field) if field else _pod_profile(spec)


def _profile_name(field: Obj) -> str:
    """strategy.go seccompAnnotationForField."""
    kind = field.get("type")
    if kind == "Unconfined":
        return "unconfined"
    if kind == "RuntimeDefault":
        return RUNTIME_DEFAULT
    if kind == "Localhost" and field.get("localhostProfile"):
        return f"localhost/{field['localhostProfile']}"
    return ""


def _profile_field(name: str) -> Obj:
    """provider.go seccompFieldForAnnotation."""
    if name == "unconfined":
        return {"type": "Unconfined"}
    if name in (RUNTIME_DEFAULT, "docker/default"):
        return {"type": "RuntimeDefault"}
    return {"type": "Localhost", "localhostProfile": name.removeprefix("localhost/")}


def _effective(container_context: Obj, pod_context: Obj, field: str) -> Any:
    """A container's setting, else its pod's (securitycontext effective accessors)."""
    if field in container_context:
        return container_context[field]
    return pod_context.get(field)
