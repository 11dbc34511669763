"""What a request path and its query name: a discovery document, or a resource
(group, version, type, namespace, name, subresource) and the verb the
apiserver's RequestInfoResolver gives it; Go's spellings of boolean and integer
query parameters (strconv.ParseBool, non-negative integers).
"""

from dataclasses import dataclass
from typing import Any

from testbed.kube import errors, resources
from testbed.kube.resources import ResourceType

JSON = dict[str, Any]

#: The Kubernetes release whose API the pinned client (37.x, OpenAPI release-1.37) speaks.
VERSION_INFO = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0+glusterfs-provisioner-test",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "",
    "goVersion": "",
    "compiler": "python",
    "platform": "linux/amd64",
}
_GO_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_GO_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


@dataclass(frozen=True)
class Route:
    rt: ResourceType
    namespace: str | None  # None: all namespaces (collection) or cluster-scoped
    name: str | None
    subresource: str | None
    watch_path: bool


def parse_bool(value: str | None, param: str) -> bool | None:
    if value is None or value == "":
        return None
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise errors.bad_request(f'invalid boolean value for {param}: "{value}"')


def int_param(query: dict[str, str], name: str) -> int:
    text = query.get(name, "")
    if text == "":
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise errors.bad_request(f'{name}: Invalid value: "{text}": must be a non-negative integer')
    return value


def route(path: str) -> Route | None:
    """The resource a path names, or None when the path is not a resource path."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    types = resources.BY_GROUP_VERSION.get((group, version))
    if types is None or not rest:
        return None
    watch_path = rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    return _route_rest(types, rest, watch_path)


def _route_rest(types: dict[str, ResourceType], rest: list[str], watch_path: bool) -> Route | None:
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        rt = types.get(rest[2])
        if rt is None or not rt.namespaced or len(rest) > 5:
            return None
        name = rest[3] if len(rest) > 3 else None
        sub = rest[4] if len(rest) > 4 else None
        return _checked(Route(rt, rest[1], name, sub, watch_path))
    rt = types.get(rest[0])
    if rt is None or len(rest) > 3 or (rt.namespaced and len(rest) > 1):
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return _checked(Route(rt, None, name, sub, watch_path))


def _checked(r: Route) -> Route | None:
    if r.subresource is not None and (r.subresource != "status" or not r.rt.has_status):
        return None
    if r.watch_path and (r.subresource is not None or r.name is not None):
        return None
    return r


def verb_of(method: str, r: Route | None, query: dict[str, str]) -> str:
    if r is None:
        return "get"
    if method == "GET":
        if r.name is not None and not r.watch_path:
            return "get"
        watching = r.watch_path or parse_bool(query.get("watch"), "watch")
        return "watch" if watching else "list"
    collection = {"POST": "create", "DELETE": "deletecollection"}
    item = {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    table = item if r.name is not None else collection
    return table.get(method, method.lower())


def discovery_doc(path: str, address: str) -> JSON | None:
    if path == "/api":
        return resources.api_versions(address)
    if path == "/apis":
        return resources.api_group_list()
    if path == "/version":
        return dict(VERSION_INFO)
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) == 2:
        return resources.api_resource_list("", parts[1])
    if parts[0] == "apis" and len(parts) == 2:
        return resources.api_group(parts[1])
    if parts[0] == "apis" and len(parts) == 3:
        return resources.api_resource_list(parts[1], parts[2])
    return None
