"""SCC admission's validation of a defaulted pod (openshift/apiserver-library-go,
pkg/securitycontextconstraints, commit a8019f39f6708878cbb42101693940ed4817ab82:
sccmatching/provider.go ValidatePodSecurityContext, ValidateContainerSecurityContext
and the strategies they call), with the real messages: apimachinery's field.Error
text of path, error type, value and detail. scc.py runs it after defaulting.
"""

from typing import Any

Obj = dict[str, Any]

RUNTIME_DEFAULT = "runtime/default"
#: security/v1 FSTypeAll, AllowAllCapabilities; seccomp/strategy.go allowAnyProfile.
ANY = "*"
#: Where seccomp refusals point (strategy.go ValidatePod / ValidateContainer).
SECCOMP_PATH = "pod.metadata.annotations"
SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"


def validate_pod(scc: Obj, spec: Obj) -> list[str]:
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
    errors += _validate_profile(scc, pod_profile(spec), f"{SECCOMP_PATH}[{SECCOMP_POD}]")
    errors += _validate_selinux(scc, context.get("seLinuxOptions"), f"{path}.seLinuxOptions")
    errors += _validate_host_namespaces(scc, spec, path)
    return errors + _validate_volumes(scc, spec.get("volumes", []))


def validate_container(scc: Obj, spec: Obj, container: Obj, path: str) -> list[str]:
    """ValidateContainerSecurityContext."""
    context = container["securityContext"]
    pod_context = spec["securityContext"]
    errors = _validate_user(
        scc,
        effective(context, pod_context, "runAsNonRoot"),
        effective(context, pod_context, "runAsUser"),
        path,
    )
    selinux = effective(context, pod_context, "seLinuxOptions")
    errors += _validate_selinux(scc, selinux, f"{path}.seLinuxOptions")
    profile_path = f"{SECCOMP_PATH}[{SECCOMP_CONTAINER}{container['name']}]"
    errors += _validate_profile(scc, _container_profile(spec, container), profile_path)
    if context.get("privileged") and not scc["allowPrivilegedContainer"]:
        errors.append(_invalid(f"{path}.privileged", True, "Privileged containers are not allowed"))
    errors += _validate_capabilities(scc, context.get("capabilities"), path)
    errors += _validate_host_namespaces(scc, spec, path)
    host_ports = [p["hostPort"] for p in container.get("ports", []) if p.get("hostPort")]
    if not scc["allowHostPorts"]:
        errors += [
            _invalid(f"{path}.hostPort", port, "Host ports are not allowed to be used")
            for port in host_ports
        ]
    read_only = context.get("readOnlyRootFilesystem")
    if scc.get("readOnlyRootFilesystem") and read_only is not True:
        must = "may not be nil and must" if read_only is None else "must"
        detail = f"ReadOnlyRootFilesystem {must} be set to true"
        errors.append(_invalid(f"{path}.readOnlyRootFilesystem", read_only, detail))
    escalation = context.get("allowPrivilegeEscalation")
    if scc.get("allowPrivilegeEscalation") is False and escalation is not False:
        detail = "Allowing privilege escalation for containers is not allowed"
        errors.append(_invalid(f"{path}.allowPrivilegeEscalation", escalation, detail))
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
            return [_invalid(f"{path}.runAsUser", uid, f"must be in the ranges: [{low}, {high}]")]
    if kind == "MustRunAs" and uid != strategy["uid"]:
        return [_invalid(f"{path}.runAsUser", uid, f"must be: {strategy['uid']}")]
    if kind == "MustRunAsNonRoot":
        if non_root is None and uid is None:
            return [f"{path}.runAsNonRoot: Required value: must be true"]
        if non_root is False:
            return [_invalid(f"{path}.runAsNonRoot", False, "must be true")]
        if uid == 0:
            return [_invalid(f"{path}.runAsUser", 0, "running with the root UID is forbidden")]
    return []


def _validate_groups(strategy: Obj, groups: list[int], path: str) -> list[str]:
    """group/mustrunas.go Validate (RunAsAny accepts anything)."""
    if strategy["type"] != "MustRunAs":
        return []
    if not groups:
        return [_invalid(path, groups, "unable to validate empty groups against required ranges")]
    ranges = strategy["ranges"]
    return [
        _invalid(path, groups, f"{group} is not an allowed group")
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
    for key in ("level", "role", "type", "user"):
        want, got = expected.get(key, ""), options.get(key, "")
        if not (_equal_levels(want, got) if key == "level" else want == got):
            errors.append(_invalid(f"{path}.{key}", got, f"must be {want}"))
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
            detail = "required capabilities are not set on the securityContext"
            return [_invalid(f"{path}.capabilities", None, detail)]
        return []
    allowed = set(scc.get("allowedCapabilities") or [])
    if ANY in allowed:
        return []
    errors = [
        _invalid(f"{path}.capabilities.add", cap, "capability may not be added")
        for cap in capabilities.get("add") or []
        if cap not in default_add | allowed
    ]
    drops = set(capabilities.get("drop") or [])
    errors += [
        _invalid(
            f"{path}.capabilities.drop",
            capabilities.get("drop") or [],
            f"{cap} is required to be dropped but was not found",
        )
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
            errors.append(_invalid(f"{path}.{field}", True, f"{name} is not allowed to be used"))
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
            detail = f"{kind} volumes are not allowed to be used"
            errors.append(_invalid(f"spec.volumes[{index}]", kind, detail))
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


def allowed_profiles(scc: Obj) -> list[str]:
    return [p for p in scc.get("seccompProfiles") or [] if p != ANY]


def _validate_profile(scc: Obj, profile: str, path: str) -> list[str]:
    """strategy.go validateProfile."""
    allow_any = ANY in (scc.get("seccompProfiles") or [])
    allowed = allowed_profiles(scc)
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


def pod_profile(spec: Obj) -> str:
    return _profile_name(spec.get("securityContext", {}).get("seccompProfile") or {})


def _container_profile(spec: Obj, container: Obj) -> str:
    field = container.get("securityContext", {}).get("seccompProfile")
    return _profile_name(field) if field else pod_profile(spec)


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


def _invalid(path: str, value: Any, detail: str) -> str:
    """field.Invalid(path, value, detail).Error(): strings quoted, numbers and
    booleans bare, nil as "null", slices as Go prints them."""
    if value is None:
        shown = '"null"'
    elif isinstance(value, bool):
        shown = str(value).lower()
    elif isinstance(value, str):
        shown = f'"{value}"'
    elif isinstance(value, list):
        strings = bool(value) and all(isinstance(v, str) for v in value)
        items = ", ".join(f'"{v}"' if strings else str(v) for v in value)
        shown = f"[]{'core.Capability' if strings else 'int64'}{{{items}}}"
    else:
        shown = str(value)
    return f"{path}: Invalid value: {shown}: {detail}"


def effective(container_context: Obj, pod_context: Obj, field: str) -> Any:
    """A container's setting, else its pod's (securitycontext effective accessors)."""
    if field in container_context:
        return container_context[field]
    return pod_context.get(field)
