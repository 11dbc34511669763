"""core/v1 Endpoints and Services: the create defaults and validation a storage admin meets.

In-tree GlusterFS volumes name an Endpoints object (the Gluster servers) and its
selector-less Service; `migrate` reads and prunes them. The rules follow
kubernetes/kubernetes `pkg/apis/core/validation/validation.go`
(`ValidateEndpoints` → `validateEndpointSubsets` / `validateEndpointAddress` /
`ValidateNonSpecialIP` / `validateEndpointPort`, `ValidateService` with the service name a
DNS-1035 label) and the service REST storage (`pkg/registry/core/service/storage`: a
ClusterIP allocated from the service range, defaults from `pkg/apis/core/v1/defaults.go`
`SetDefaults_Service`). Messages are the apiserver's.
"""

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

JSON = dict[str, Any]
Cause = tuple[str, str, str]

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
UNSUPPORTED = "FieldValueNotSupported"
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: kubeadm's default --service-cluster-ip-range; ClusterIPs are handed out from it.
SERVICE_RANGE = ipaddress.ip_network("10.96.0.0/12")
#: The range's first address is the `kubernetes` Service's (not modelled: skip it).
_FIRST_FREE_OFFSET = 2


def _ip_causes(field: str, value: Any) -> list[Cause]:
    """`validation.IsValidIP` then `ValidateNonSpecialIP`."""
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        return [
            (
                field,
                INVALID,
                f'Invalid value: "{value}": must be a valid IP address, '
                "(e.g. 10.9.8.7 or 2001:db8::ffff)",
            )
        ]
    special = (
        (ip.is_unspecified, f"may not be unspecified ({value})"),
        (ip.is_loopback, "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        (ip.is_link_local, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    )
    return [(field, INVALID, f'Invalid value: "{value}": {why}') for bad, why in special if bad]


def _port_causes(field: str, port: Any, *, name_required: bool) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(port, dict):
        return [(field, INVALID, "Invalid value: must be an object")]
    name = port.get("name") or ""
    if name_required and not name:
        causes.append((f"{field}.name", REQUIRED, "Required value"))
    elif name and (len(name) > 15 or not _IANA_SVC_NAME.match(name)):
        causes.append(
            (f"{field}.name", INVALID, f'Invalid value: "{name}": must be a valid port name')
        )
    number = port.get("port")
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
        causes.append(
            (
                f"{field}.port",
                INVALID,
                f"Invalid value: {number}: must be between 1 and 65535, inclusive",
            )
        )
    protocol = port.get("protocol")
    if protocol not in _PROTOCOLS:
        supported = ", ".join(f'"{p}"' for p in _PROTOCOLS)
        causes.append(
            (
                f"{field}.protocol",
                UNSUPPORTED,
                f'Unsupported value: "{protocol}": supported values: {supported}',
            )
        )
    return causes


# --- Endpoints ----------------------------------------------------------------------------


def endpoints_create(obj: JSON) -> None:
    """`SetDefaults_EndpointPort`: protocol TCP."""
    for subset in obj.get("subsets") or []:
        for port in (subset or {}).get("ports") or [] if isinstance(subset, dict) else []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


def endpoints_validate(obj: JSON) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(obj.get("subsets") or []):
        causes += _subset_causes(f"subsets[{i}]", subset if isinstance(subset, dict) else {})
    return causes


def _subset_causes(field: str, subset: JSON) -> list[Cause]:
    causes: list[Cause] = []
    addresses = subset.get("addresses") or []
    not_ready = subset.get("notReadyAddresses") or []
    if not addresses and not not_ready:
        causes.append(
            (field, REQUIRED, "Required value: must specify `addresses` or `notReadyAddresses`")
        )
    for kind, listed in (("addresses", addresses), ("notReadyAddresses", not_ready)):
        for j, address in enumerate(listed):
            ip = address.get("ip") if isinstance(address, dict) else None
            causes += _ip_causes(f"{field}.{kind}[{j}].ip", ip)
    ports = subset.get("ports") or []
    if not ports:
        causes.append((f"{field}.ports", REQUIRED, "Required value"))
    for k, port in enumerate(ports):
        causes += _port_causes(f"{field}.ports[{k}]", port, name_required=len(ports) > 1)
    return causes


# --- Service ------------------------------------------------------------------------------


def service_name_causes(name: str) -> list[Cause]:
    if len(name) <= 63 and _DNS1035.match(name):
        return []
    return [
        (
            "metadata.name",
            INVALID,
            f'Invalid value: "{name}": a DNS-1035 label must consist of lower case '
            "alphanumeric characters or '-', start with an alphabetic character, and end with "
            "an alphanumeric character",
        )
    ]


def service_create(obj: JSON, used_ips: Iterable[str]) -> None:
    """Defaults of `SetDefaults_Service` and a ClusterIP from the service range."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    if spec.get("type") in ("ClusterIP", "NodePort", "LoadBalancer") and not spec.get("clusterIP"):
        spec["clusterIP"] = _free_ip(set(used_ips))
    if spec.get("clusterIP") and spec["clusterIP"] != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    obj["status"] = {"loadBalancer": {}}


def _free_ip(used: set[str]) -> str:
    for offset in range(_FIRST_FREE_OFFSET, SERVICE_RANGE.num_addresses - 1):
        candidate = str(SERVICE_RANGE.network_address + offset)
        if candidate not in used:
            return candidate
    raise RuntimeError("the service IP range is full")  # 2^20 Services: never in a test


def service_validate(obj: JSON) -> list[Cause]:
    causes = service_name_causes(str((obj.get("metadata") or {}).get("name", "")))
    spec = obj.get("spec") or {}
    ports = spec.get("ports") or []
    if not ports and spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(("spec.ports", REQUIRED, "Required value"))
    for k, port in enumerate(ports):
        causes += _port_causes(f"spec.ports[{k}]", port, name_required=len(ports) > 1)
    return causes


def cluster_ips(services: Iterable[JSON]) -> set[str]:
    return {str((s.get("spec") or {}).get("clusterIP")) for s in services}
