"""StorageClass `parameters` → typed provisioning parameters (pure, no I/O).

The parameter names and meanings are those of the in-tree `kubernetes.io/glusterfs`
plugin, so existing StorageClasses keep working after switching `provisioner:`.
Keys are matched case-insensitively (`secretName` == `secretname`); an empty value
means "not set" (the default applies); an unknown key is an error rather than being
silently ignored. Every error is an `InvalidParameter` whose message names the
parameter, the accepted form and the offending value (never a secret).
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from provisioner.errors import InvalidArgument
from provisioner.heketi.config import UrlProblem, shown_url, url_problem
from provisioner.heketi.types import Durability, is_heketi_id

#: Heketi's administrator user; Heketi has exactly two users, `admin` and `user`.
DEFAULT_REST_USER: Final = "admin"
#: Replica count of `volumetype: replicate` without a count, and of no `volumetype`
#: at all — the in-tree plugin's default (three copies survive one lost node).
DEFAULT_REPLICA: Final = 3
#: Lowest GID handed out: below it live distribution system groups (in-tree floor).
ABSOLUTE_GID_MIN: Final = 2000
#: Highest GID: the largest value of a signed 32-bit gid_t (in-tree ceiling).
ABSOLUTE_GID_MAX: Final = 2**31 - 1
#: Heketi's thin-pool snapshot factor bounds (1 = no snapshot reserve, 100 = Heketi max).
SNAP_FACTOR_MIN: Final = 1.0
SNAP_FACTOR_MAX: Final = 100.0
#: A prefix longer than this would crowd the namespace and claim out of the 127
#: characters we allow for a Heketi volume name.
VOLUME_NAME_PREFIX_MAX: Final = 32

#: Durability when the class has no `volumetype`.
DEFAULT_DURABILITY: Final = Durability(type="replicate", replica=DEFAULT_REPLICA)

_PREFIX = re.compile(r"[A-Za-z0-9-]+")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class InvalidParameter(InvalidArgument):
    """A StorageClass parameter is missing, unknown or has a bad value."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        #: The canonical (in-tree) spelling of the parameter at fault.
        self.parameter = parameter


@dataclass(frozen=True)
class ProvisioningParams:
    """What a StorageClass asks of Heketi, validated."""

    rest_url: str
    rest_auth_enabled: bool = True
    rest_user: str = DEFAULT_REST_USER
    #: Deprecated inline key (`restuserkey`); None when a Secret is named or auth is off.
    rest_user_key: str | None = field(default=None, repr=False)
    secret_namespace: str | None = None
    secret_name: str | None = None
    cluster_ids: tuple[str, ...] = ()
    durability: Durability = DEFAULT_DURABILITY
    gid_min: int = ABSOLUTE_GID_MIN
    gid_max: int = ABSOLUTE_GID_MAX
    volume_options: tuple[str, ...] = ()
    volume_name_prefix: str | None = None
    snap_factor: float | None = None
    #: PEM bundle (path inside the provisioner container) trusted for an https resturl.
    rest_ca_file: str | None = None
    #: Human-readable notes for an Event (deprecations, ignored parameters).
    warnings: tuple[str, ...] = ()

    @property
    def uses_secret(self) -> bool:
        """Whether the Heketi key is to be read from the named Secret."""
        return self.secret_name is not None


#: Canonical spelling (as documented) of every accepted parameter.
CANONICAL_NAMES: Final[tuple[str, ...]] = (
    "resturl",
    "restauthenabled",
    "restuser",
    "restuserkey",
    "secretNamespace",
    "secretName",
    "clusterid",
    "volumetype",
    "gidMin",
    "gidMax",
    "volumeoptions",
    "volumenameprefix",
    "snapfactor",
    "restcafile",
    "customepnameprefix",
)
_BY_LOWER: Final = {name.lower(): name for name in CANONICAL_NAMES}


def parse_parameters(parameters: Mapping[str, str]) -> ProvisioningParams:
    """Validate StorageClass `parameters`; raise `InvalidParameter` on the first fault."""
    values = _normalise_keys(parameters)
    url = values.get("resturl")
    if url is None:
        raise InvalidParameter(
            "resturl",
            "StorageClass parameter 'resturl' is required: the Heketi REST URL, "
            "e.g. http://heketi.storage.svc:8080",
        )
    params = ProvisioningParams(rest_url=parse_rest_url(url))
    for name, value in values.items():
        if name != "resturl":
            params = _APPLY[name](params, value)
    return _finish(params)


def _normalise_keys(parameters: Mapping[str, str]) -> dict[str, str]:
    """Canonical name → stripped value, empty values dropped; unknown/duplicate keys fail."""
    seen: dict[str, str] = {}
    values: dict[str, str] = {}
    for key, raw in parameters.items():
        canonical = _BY_LOWER.get(key.lower())
        if canonical is None:
            raise InvalidParameter(
                key,
                f"unknown StorageClass parameter {key!r}; supported parameters: "
                f"{', '.join(CANONICAL_NAMES)}",
            )
        if canonical in seen:
            raise InvalidParameter(
                canonical,
                f"StorageClass parameter {canonical!r} is given twice "
                f"(as {seen[canonical]!r} and {key!r}); keep one",
            )
        seen[canonical] = key
        value = raw.strip()
        if value:
            values[canonical] = value
    return values


def parse_rest_url(value: str, *, source: str = "StorageClass parameter 'resturl'") -> str:
    """A Heketi URL (`http(s)://host[:port]`, no path), without a trailing slash.

    `source` names where the value came from in error messages.
    """
    problem = url_problem(value)
    if problem is UrlProblem.CREDENTIALS:
        # Never echo the value: it holds a password.
        raise InvalidParameter(
            "resturl",
            f"{source} must not contain credentials (user:password@); "
            "set 'restuser' and put the key in the Secret named by 'secretName'",
        )
    if problem is not None:
        raise InvalidParameter(
            "resturl",
            f"{source} must be an http:// or https:// URL of a host "
            "(Heketi serves its API at the root: no path or query), "
            f"e.g. http://heketi.storage.svc:8080; got {shown_url(value)!r}",
        )
    return value.rstrip("/")


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise InvalidParameter(
            name, f"StorageClass parameter {name!r} must be 'true' or 'false'; got {value!r}"
        )
    return lowered == "true"


def _parse_gid(name: str, value: str) -> int:
    try:
        gid = int(value, 10)
    except ValueError:
        gid = -1
    if not ABSOLUTE_GID_MIN <= gid <= ABSOLUTE_GID_MAX:
        raise InvalidParameter(
            name,
            f"StorageClass parameter {name!r} must be an integer from {ABSOLUTE_GID_MIN} "
            f"to {ABSOLUTE_GID_MAX}; got {value!r}",
        )
    return gid


def _parse_count(value: str, *, what: str, whole: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise InvalidParameter(
            "volumetype",
            f"StorageClass parameter 'volumetype' needs a positive integer {what}; "
            f"got {value!r} in {whole!r}",
        )
    return int(value)


def parse_volume_type(value: str) -> Durability:
    """`replicate[:N]`, `disperse:D:R` or `none` → Heketi durability."""
    kind, *counts = value.split(":")
    kind = kind.lower()
    if kind == "replicate" and len(counts) <= 1:
        replica = _parse_count(counts[0], what="replica count", whole=value) if counts else None
        return Durability(type="replicate", replica=replica or DEFAULT_REPLICA)
    if kind == "disperse" and len(counts) == 2:
        data = _parse_count(counts[0], what="data brick count", whole=value)
        redundancy = _parse_count(counts[1], what="redundancy brick count", whole=value)
        return Durability(type="disperse", data=data, redundancy=redundancy)
    if kind == "none" and not counts:
        return Durability(type="none")
    raise InvalidParameter(
        "volumetype",
        "StorageClass parameter 'volumetype' must be 'replicate:<replicas>' (e.g. replicate:3), "
        f"'disperse:<data>:<redundancy>' (e.g. disperse:4:2) or 'none'; got {value!r}",
    )


def _parse_cluster_ids(value: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    for cluster in ids:
        if not is_heketi_id(cluster):
            raise InvalidParameter(
                "clusterid",
                f"StorageClass parameter 'clusterid' entry {cluster!r} is not a Heketi cluster "
                "id (32 lowercase hexadecimal characters, as `heketi-cli cluster list` prints)",
            )
    return ids


def _parse_volume_options(value: str) -> tuple[str, ...]:
    options = tuple(" ".join(part.split()) for part in value.split(",") if part.strip())
    for option in options:
        if len(option.split(" ", 1)) != 2:
            raise InvalidParameter(
                "volumeoptions",
                f"StorageClass parameter 'volumeoptions' entry {option!r} must be "
                "'<option> <value>', e.g. 'performance.cache-size 256MB'; separate entries "
                "with commas",
            )
    return options


def _parse_prefix(value: str) -> str:
    if "_" in value:
        raise InvalidParameter(
            "volumenameprefix",
            "StorageClass parameter 'volumenameprefix' must not contain '_' (it separates "
            f"prefix, namespace, claim name and UID in the volume name); got {value!r}",
        )
    if not _PREFIX.fullmatch(value) or len(value) > VOLUME_NAME_PREFIX_MAX:
        raise InvalidParameter(
            "volumenameprefix",
            "StorageClass parameter 'volumenameprefix' may hold only letters, digits and '-', "
            f"at most {VOLUME_NAME_PREFIX_MAX} characters; got {value!r}",
        )
    return value


def _parse_snap_factor(value: str) -> float:
    try:
        factor = float(value)
    except ValueError:
        factor = float("nan")
    if not SNAP_FACTOR_MIN <= factor <= SNAP_FACTOR_MAX:  # also rejects nan
        raise InvalidParameter(
            "snapfactor",
            f"StorageClass parameter 'snapfactor' must be a number from {SNAP_FACTOR_MIN:g} "
            f"to {SNAP_FACTOR_MAX:g}; got {value!r}",
        )
    return factor


def _parse_k8s_name(name: str, value: str, pattern: re.Pattern[str], kind: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidParameter(
            name,
            f"StorageClass parameter {name!r} must be a valid Kubernetes {kind} (lowercase "
            f"letters, digits and '-'); got {value!r}",
        )
    return value


def _parse_ca_file(value: str) -> str:
    if not value.startswith("/"):
        raise InvalidParameter(
            "restcafile",
            "StorageClass parameter 'restcafile' must be an absolute path to a PEM file "
            f"mounted in the provisioner container; got {value!r}",
        )
    return value


_Apply = Callable[[ProvisioningParams, str], ProvisioningParams]
_APPLY: Final[dict[str, _Apply]] = {
    "restauthenabled": lambda p, v: replace(p, rest_auth_enabled=_parse_bool("restauthenabled", v)),
    "restuser": lambda p, v: replace(p, rest_user=v),
    "restuserkey": lambda p, v: replace(p, rest_user_key=v),
    "secretNamespace": lambda p, v: replace(
        p, secret_namespace=_parse_k8s_name("secretNamespace", v, _DNS_LABEL, "namespace name")
    ),
    "secretName": lambda p, v: replace(
        p, secret_name=_parse_k8s_name("secretName", v, _DNS_SUBDOMAIN, "Secret name")
    ),
    "clusterid": lambda p, v: replace(p, cluster_ids=_parse_cluster_ids(v)),
    "volumetype": lambda p, v: replace(p, durability=parse_volume_type(v)),
    "gidMin": lambda p, v: replace(p, gid_min=_parse_gid("gidMin", v)),
    "gidMax": lambda p, v: replace(p, gid_max=_parse_gid("gidMax", v)),
    "volumeoptions": lambda p, v: replace(p, volume_options=_parse_volume_options(v)),
    "volumenameprefix": lambda p, v: replace(p, volume_name_prefix=_parse_prefix(v)),
    "snapfactor": lambda p, v: replace(p, snap_factor=_parse_snap_factor(v)),
    "restcafile": lambda p, v: replace(p, rest_ca_file=_parse_ca_file(v)),
    "customepnameprefix": lambda p, v: _warn(
        p,
        "StorageClass parameter 'customepnameprefix' has no effect: CSI volumes need no "
        "Endpoints object",
    ),
}


def _warn(params: ProvisioningParams, message: str) -> ProvisioningParams:
    return replace(params, warnings=(*params.warnings, message))


def _finish(params: ProvisioningParams) -> ProvisioningParams:
    """Cross-parameter rules, in the in-tree plugin's order of precedence."""
    if params.gid_min > params.gid_max:
        raise InvalidParameter(
            "gidMin",
            f"StorageClass parameter 'gidMin' ({params.gid_min}) must not be greater than "
            f"'gidMax' ({params.gid_max})",
        )
    if params.rest_ca_file is not None and not params.rest_url.startswith("https://"):
        raise InvalidParameter(
            "restcafile",
            "StorageClass parameter 'restcafile' applies only to an https:// 'resturl'",
        )
    if not params.rest_auth_enabled:
        return _without_credentials(params)
    if (params.secret_name is None) != (params.secret_namespace is None):
        given = "secretName" if params.secret_name is not None else "secretNamespace"
        raise InvalidParameter(
            given,
            "StorageClass parameters 'secretNamespace' and 'secretName' must be set together; "
            f"only {given!r} is set",
        )
    return _key_source(params)


def _without_credentials(params: ProvisioningParams) -> ProvisioningParams:
    ignored = [
        name
        for name, value in (
            ("restuserkey", params.rest_user_key),
            ("secretNamespace", params.secret_namespace),
            ("secretName", params.secret_name),
        )
        if value is not None
    ]
    params = replace(params, rest_user_key=None, secret_namespace=None, secret_name=None)
    if ignored:
        params = _warn(
            params,
            f"StorageClass parameters {', '.join(ignored)} are ignored because "
            "'restauthenabled' is 'false'",
        )
    return params


def _key_source(params: ProvisioningParams) -> ProvisioningParams:
    if params.rest_user_key is None:
        return params
    if params.secret_name is not None:
        return _warn(
            replace(params, rest_user_key=None),
            "StorageClass parameter 'restuserkey' is ignored because 'secretName' is set; "
            "remove it from the class",
        )
    return _warn(
        params,
        "StorageClass parameter 'restuserkey' is deprecated: it keeps the Heketi key in plain "
        "text in the class; put the key in a Secret of type kubernetes.io/glusterfs (data key "
        "'key') and name it with 'secretNamespace' and 'secretName'",
    )
