"""Heketi v10.4.1's route table and how its router picks a route.

The table is the contract: the Heketi test server serves no route outside it, and
the walk-the-surface test checks that the client calls none. Sources (tag v10.4.1
of heketi/heketi): `apps/glusterfs/app.go` `App.SetRoutes` (the REST routes, ids
matched by `[A-Fa-f0-9]+`), `server/admin/http.go` `ServerState.SetRoutes`
(`/admin`), `main.go` (`/hello` and `/metrics` on an outer router without auth).

How gorilla/mux (`mux.NewRouter().StrictSlash(true)` in `main.go`) answers, as
observed on the real v10.4.1 binary:

* a path that matches a route but not its method: 405, empty body (also for a
  trailing-slash form of it, and for HEAD: no route is registered for HEAD);
* a path that matches a route with one trailing `/` too many: 301 to the path
  without it (`<a href="…">Moved Permanently</a>.`), before any handler runs;
* anything else: `App.NotFoundHandler`, 404 `Invalid path or request` + newline.
  That includes ids that are not hexadecimal (`/volumes/xyz`), `POST /hello`,
  `/hello/` and `/topology` (heketi-cli builds its "topology info" client side).
"""

import re
from dataclasses import dataclass
from typing import Final, Literal

#: Every path segment `{id:[A-Fa-f0-9]+}` of the real routes.
_ID: Final = "[A-Fa-f0-9]+"
NOT_FOUND_MESSAGE: Final = "Invalid path or request"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # as written in app.go, e.g. /volumes/{id:[A-Fa-f0-9]+}
    name: str  # the route's Name in app.go = its handler's name
    #: Served outside the JWT middleware (main.go's outer router).
    public: bool = False

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile("^" + self.pattern.replace("{id:" + _ID + "}", _ID) + "$")


def _r(method: str, path: str, name: str, *, public: bool = False) -> Route:
    return Route(method, path.replace("{id}", "{id:" + _ID + "}"), name, public)


#: Heketi v10.4.1's routes, in app.go's order (then admin, then main.go's own).
ROUTES: Final[tuple[Route, ...]] = (
    _r("GET", "/queue/{id}", "Async"),
    _r("POST", "/clusters", "ClusterCreate"),
    _r("POST", "/clusters/{id}/flags", "ClusterSetFlags"),
    _r("GET", "/clusters/{id}", "ClusterInfo"),
    _r("GET", "/clusters", "ClusterList"),
    _r("DELETE", "/clusters/{id}", "ClusterDelete"),
    _r("POST", "/nodes", "NodeAdd"),
    _r("GET", "/nodes/{id}", "NodeInfo"),
    _r("DELETE", "/nodes/{id}", "NodeDelete"),
    _r("POST", "/nodes/{id}/state", "NodeSetState"),
    _r("POST", "/nodes/{id}/tags", "NodeSetTags"),
    _r("POST", "/devices", "DeviceAdd"),
    _r("GET", "/devices/{id}", "DeviceInfo"),
    _r("DELETE", "/devices/{id}", "DeviceDelete"),
    _r("POST", "/devices/{id}/state", "DeviceSetState"),
    _r("GET", "/devices/{id}/resync", "DeviceResync"),
    _r("POST", "/devices/{id}/tags", "DeviceSetTags"),
    _r("POST", "/volumes", "VolumeCreate"),
    _r("GET", "/volumes/{id}", "VolumeInfo"),
    _r("POST", "/volumes/{id}/expand", "VolumeExpand"),
    _r("DELETE", "/volumes/{id}", "VolumeDelete"),
    _r("GET", "/volumes", "VolumeList"),
    _r("POST", "/volumes/{id}/block-restriction", "VolumeSetBlockRestriction"),
    _r("POST", "/volumes/{id}/clone", "VolumeClone"),
    _r("POST", "/blockvolumes", "BlockVolumeCreate"),
    _r("GET", "/blockvolumes/{id}", "BlockVolumeInfo"),
    _r("DELETE", "/blockvolumes/{id}", "BlockVolumeDelete"),
    _r("GET", "/blockvolumes", "BlockVolumeList"),
    _r("POST", "/blockvolumes/{id}/expand", "BlockVolumeExpand"),
    _r("POST", "/bricks/to-evict/{id}", "BrickEvict"),
    _r("GET", "/backup/db", "Backup"),
    _r("GET", "/db/dump", "DbDump"),
    _r("GET", "/db/check", "DbCheck"),
    _r("GET", "/internal/logging", "GetLogLevel"),
    _r("POST", "/internal/logging", "SetLogLevel"),
    _r("GET", "/operations", "OperationsInfo"),
    _r("GET", "/operations/pending", "PendingOperationList"),
    _r("GET", "/operations/pending/{id}", "PendingOperationDetails"),
    _r("POST", "/operations/pending/cleanup", "PendingOperationCleanUp"),
    _r("GET", "/internal/state/examine/gluster", "ExamineGluster"),
    _r("GET", "/admin", "GetAdminState"),
    _r("POST", "/admin", "SetAdminState"),
    _r("GET", "/hello", "Hello", public=True),
    _r("GET", "/metrics", "Metrics", public=True),
)
_COMPILED: Final = tuple((route, route.regex) for route in ROUTES)


@dataclass(frozen=True)
class Match:
    """How the real router answers a request line. `route` is set for "serve"."""

    outcome: Literal["serve", "redirect", "method_not_allowed", "not_found"]
    route: Route | None = None
    location: str = ""


def match(method: str, path: str) -> Match:
    """The real router's decision for `method` `path` (path without query)."""
    hit = _match_exact(method, path, public=True)
    if hit is not None:
        return hit
    stripped = path[:-1] if path != "/" and path.endswith("/") else None
    allowed = False
    for route, regex in _COMPILED:
        if route.public:
            continue
        if regex.match(path):
            if route.method == method:
                return Match("serve", route)
            allowed = True
        elif stripped is not None and regex.match(stripped):
            if route.method == method:
                return Match("redirect", route, location=stripped)
            allowed = True
    return Match("method_not_allowed" if allowed else "not_found")


def public_route(method: str, path: str) -> Route | None:
    """The route of main.go's outer router (no token needed) that serves this, or None."""
    found = _match_exact(method, path, public=True)
    return found.route if found is not None else None


def _match_exact(method: str, path: str, *, public: bool) -> Match | None:
    """main.go's outer router: exact method and path, no trailing-slash handling."""
    for route, regex in _COMPILED:
        if route.public == public and route.method == method and regex.match(path):
            return Match("serve", route)
    return None


def route_of(method: str, path: str) -> Route | None:
    """The route that serves `method` `path` on real Heketi, or None."""
    found = match(method, path)
    return found.route if found.outcome == "serve" else None
