"""The controller's RBAC in deploy/ grants exactly the API calls the controller makes.

The controller runs in-process with the configuration its Deployment's args
build, against the Kubernetes API test server (which logs every request) and
the Heketi test server, through everything it does: provision (Secret, PV,
binding), the rare paths of provisioning (a PV that already exists, a claim
changed during the bind), repeated Events,
expansion, deletion, and leader election including the release on stop. The
test's own requests are taken out of the log; what remains, as RBAC sees it
(API group, resource[/subresource], verb), must be what the ClusterRole and
the leader-election Role grant: nothing missing, nothing more.
"""

import argparse
import base64
import dataclasses
import socket
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import yaml

from provisioner import cli, names
from provisioner.controller.command import build_config
from provisioner.controller.controller import Controller, ControllerConfig
from provisioner.controller.informer import InformerSettings
from provisioner.controller.workqueue import BackoffPolicy
from provisioner.heketi.config import HeketiSettings
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from tests import polling

T = TypeVar("T")
Obj = dict[str, Any]
#: (API group, resource or resource/subresource, verb), as RBAC rules name them.
Grant = tuple[str, str, str]

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
NAMESPACE = "glusterfs-provisioner"
APP_NS = "apps"
HEKETI_KEY = "rbac-test-admin-key"
SCENARIO_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 10.0
#: Shrunk retry timings (the production ones would dominate the run time); set
#: through the configuration, as the controller tests do.
FAST_BACKOFF = BackoffPolicy(base_seconds=0.05, cap_seconds=0.3, jitter=0.2)
FAST_INFORMER = InformerSettings(
    reconnect_backoff=BackoffPolicy(base_seconds=0.05, cap_seconds=0.3, jitter=0.2)
)
FAST_HEKETI = HeketiSettings(
    retry_base=0.02,
    retry_cap=0.1,
    retry_budget=1.0,
    retry_attempts=3,
    operation_deadline=10.0,
    request_timeout=5.0,
    poll_initial=0.02,
    poll_max=0.1,
)
#: Heketi answers this slowly while the test changes things under a provisioning.
SLOW_HEKETI_MS = 1000


# --- what the manifests grant ----------------------------------------------------------------
def _rbac_objects() -> list[Obj]:
    with (DEPLOY / "base" / "controller-rbac.yaml").open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def _grants(kind: str) -> tuple[set[Grant], str | None]:
    (role,) = [obj for obj in _rbac_objects() if obj["kind"] == kind]
    grants = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    return grants, role["metadata"].get("namespace")


def _deployment_args() -> list[str]:
    with (DEPLOY / "base" / "controller-deployment.yaml").open(encoding="utf-8") as stream:
        deployment = yaml.safe_load(stream)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [arg.replace("$(POD_NAMESPACE)", NAMESPACE) for arg in container["args"]]


# --- what the controller asked for -------------------------------------------------------------
def as_grant(verb: str, path: str) -> tuple[Grant, str | None]:
    """An API request as RBAC sees it, with the namespace it was made in."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    elif parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        raise AssertionError(f"non-resource request {verb} {path}: needs nonResourceURLs")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    return (group, resource, verb), namespace


@pytest.mark.parametrize(
    ("verb", "path", "expected"),
    [
        ("list", "/api/v1/persistentvolumes", (("", "persistentvolumes", "list"), None)),
        ("patch", "/api/v1/namespaces/a/persistentvolumeclaims/c/status",
         (("", "persistentvolumeclaims/status", "patch"), "a")),
        ("update", "/apis/coordination.k8s.io/v1/namespaces/n/leases/l",
         (("coordination.k8s.io", "leases", "update"), "n")),
        ("watch", "/apis/storage.k8s.io/v1/storageclasses",
         (("storage.k8s.io", "storageclasses", "watch"), None)),
    ],
    ids=["cluster-list", "status-subresource", "namespaced-group", "group-watch"],
)  # fmt: skip
def test_requests_map_to_the_rbac_grant_they_need(
    verb: str, path: str, expected: tuple[Grant, str | None]
) -> None:
    assert as_grant(verb, path) == expected


# --- the run -----------------------------------------------------------------------------------
def wait_for(what: str, probe: Callable[[], T | None], *, timeout: float = SCENARIO_TIMEOUT_S) -> T:
    """`tests.polling.wait_for` with this module's default deadline."""
    return polling.wait_for(what, probe, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Driver:
    """The test's own API writes, remembered so they can be taken out of the log."""

    def __init__(self, kube: KubeTestServer) -> None:
        self.kube = kube
        self.session = requests.Session()
        self.own: Counter[tuple[str, str]] = Counter()

    def _send(self, verb: str, method: str, path: str, body: Any, content_type: str) -> None:
        self.own[(verb, path)] += 1
        response = self.session.request(
            method, self.kube.url + path, json=body, timeout=HTTP_TIMEOUT_S,
            headers={"Content-Type": content_type},
        )  # fmt: skip
        assert response.ok, f"{method} {path}: {response.status_code} {response.text}"

    def merge_patch(self, path: str, body: Obj) -> None:
        self._send("patch", "PATCH", path, body, "application/merge-patch+json")

    def json_patch(self, path: str, ops: list[Obj]) -> None:
        self._send("patch", "PATCH", path, ops, "application/json-patch+json")

    def delete(self, path: str) -> None:
        self._send("delete", "DELETE", path, None, "application/json")

    def claim_path(self, name: str) -> str:
        return f"/api/v1/namespaces/{APP_NS}/persistentvolumeclaims/{name}"

    def claim(self, name: str, *, storage_class: str = "glusterfs", size: str = "1Gi") -> Obj:
        return self.kube.create({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": APP_NS},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": size}}},
        })  # fmt: skip

    def get_claim(self, name: str) -> Obj | None:
        return self.kube.get("persistentvolumeclaims", name, APP_NS)

    def phase(self, name: str) -> str:
        claim = self.get_claim(name) or {}
        return str((claim.get("status") or {}).get("phase", ""))


def _seed(kube: KubeTestServer, heketi: HeketiTestServer) -> None:
    for namespace in (NAMESPACE, APP_NS):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    examples = DEPLOY / "examples"
    secret = yaml.safe_load((examples / "heketi-secret.yaml").read_text(encoding="utf-8"))
    secret["data"] = {"key": base64.b64encode(HEKETI_KEY.encode()).decode()}
    del secret["stringData"]
    kube.create(secret)
    storage_class = yaml.safe_load((examples / "storageclass.yaml").read_text(encoding="utf-8"))
    storage_class["parameters"]["resturl"] = heketi.url
    kube.create(storage_class)
    broken = {
        **storage_class,
        "metadata": {"name": "broken"},
        "parameters": {**storage_class["parameters"], "volumetype": "replicate:many"},
    }
    kube.create(broken)


def _controller_config() -> ControllerConfig:
    parser = cli.build_parser()
    args: argparse.Namespace = parser.parse_args(_deployment_args())
    config = build_config(args)
    return dataclasses.replace(
        config, backoff=FAST_BACKOFF, informer=FAST_INFORMER, heketi_settings=FAST_HEKETI,
        metrics_address=("127.0.0.1", _free_port()), drain_seconds=5.0, sync_timeout_seconds=10.0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def observed() -> Iterator[tuple[list[tuple[str, str]], Controller]]:
    """Run the whole scenario once; yields the controller's own requests (verb, path)."""
    with KubeTestServer() as kube, HeketiTestServer(admin_key=HEKETI_KEY) as heketi:
        _seed(kube, heketi)
        driver = Driver(kube)
        controller = Controller(kube.api_client(), _controller_config(), identity="rbac-test")
        controller.start()
        try:
            _scenario(driver, heketi, controller)
        finally:
            controller.stop(release=True)
        log = Counter((r.verb, r.path) for r in kube.requests)
        log.subtract(driver.own)
        assert all(count >= 0 for count in log.values()), "own request missing from the log"
        yield [request for request in log.elements()], controller


def _scenario(driver: Driver, heketi: HeketiTestServer, controller: Controller) -> None:
    _check_probes(controller)
    _provision_and_bind(driver)
    _provision_through_a_race(driver, heketi)
    _repeat_a_failure_event(driver)
    _expand(driver)
    _delete(driver)
    assert controller.events.flush(timeout=5.0)


def _check_probes(controller: Controller) -> None:
    """The Deployment's probe paths answer on the metrics address."""
    assert controller.config.metrics_address is not None
    host, port = controller.config.metrics_address
    wait_for("leadership", controller.is_leading)
    for path in ("/healthz", "/readyz"):

        def ok(path: str = path) -> bool:
            try:
                with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_for(f"{path} to answer 200", ok)


def _provision_and_bind(driver: Driver) -> None:
    driver.claim("data")
    _bind(driver, "data")


def _bind(driver: Driver, name: str) -> None:
    """Wait for the controller to bind the claim, then finish it as the PV binder does.

    The server's automatic binder stays off: it would bind a claim to a pre-bound PV
    by itself and so take the race below away from the controller."""

    def volume_name() -> str:
        claim = driver.get_claim(name) or {}
        return str((claim.get("spec") or {}).get("volumeName") or "")

    wait_for(f"the controller to bind claim {name}", volume_name)
    driver.kube.bind_claim(APP_NS, name)


def _provision_through_a_race(driver: Driver, heketi: HeketiTestServer) -> None:
    """While Heketi creates the volume: another finalizer lands on the claim (the
    controller's bind patch no longer applies: it re-reads the claim), and the PV
    appears (its create answers AlreadyExists: it reads the PV)."""
    heketi.set_latency(SLOW_HEKETI_MS)
    creates = _heketi_creates(heketi)
    claim = driver.claim("raced")
    wait_for("Heketi creating the volume of raced", lambda: _heketi_creates(heketi) > creates)
    current = driver.get_claim("raced") or {}
    assert _has_intent(current), "the intent is recorded before Heketi is called"
    finalizers = ["example.com/keep", *current["metadata"]["finalizers"]]
    driver.merge_patch(driver.claim_path("raced"), {"metadata": {"finalizers": finalizers}})
    driver.kube.create(_pv_for(claim))
    heketi.set_latency(0)
    _bind(driver, "raced")


def _heketi_creates(heketi: HeketiTestServer) -> int:
    return sum(1 for r in heketi.requests if r.method == "POST" and r.path == "/volumes")


def _has_intent(claim: Obj | None) -> bool:
    return names.PVC_FINALIZER in ((claim or {}).get("metadata") or {}).get("finalizers", [])


def _pv_for(claim: Obj) -> Obj:
    uid = claim["metadata"]["uid"]
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{uid}",
                     "annotations": {names.ANN_PROVISIONED_BY: names.DRIVER_NAME}},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "glusterfs",
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                         "namespace": APP_NS, "name": claim["metadata"]["name"], "uid": uid},
            "csi": {"driver": names.DRIVER_NAME, "volumeHandle": f"raced-{uid}",
                    "volumeAttributes": {"servers": "127.0.0.1", "volume": f"pvc-{uid}"}},
        },
    }  # fmt: skip


def _repeat_a_failure_event(driver: Driver) -> None:
    driver.claim("bad", storage_class="broken")

    def repeated() -> bool:
        events = driver.kube.list("events", APP_NS)
        return any(e["involvedObject"]["name"] == "bad" and e.get("count", 1) >= 2 for e in events)

    wait_for("a repeated ProvisioningFailed event", repeated)


def _expand(driver: Driver) -> None:
    driver.merge_patch(driver.claim_path("data"),
                       {"spec": {"resources": {"requests": {"storage": "2Gi"}}}})  # fmt: skip

    def expanded() -> bool:
        claim = driver.get_claim("data") or {}
        capacity = (claim.get("status") or {}).get("capacity") or {}
        return bool(capacity.get("storage") == "2Gi")

    wait_for("claim data expanded to 2Gi", expanded)


def _delete(driver: Driver) -> None:
    claim = driver.get_claim("data")
    assert claim is not None
    pv_name = claim["spec"]["volumeName"]
    driver.delete(driver.claim_path("data"))
    wait_for("claim data gone", lambda: driver.get_claim("data") is None)
    driver.kube.release_volume(pv_name)
    wait_for(f"{pv_name} deleted", lambda: driver.kube.get("persistentvolumes", pv_name) is None)


# --- the assertions ----------------------------------------------------------------------------
def _used(observed: list[tuple[str, str]]) -> list[tuple[Grant, str | None]]:
    return [as_grant(verb, path) for verb, path in observed]


def test_cluster_role_grants_exactly_what_the_controller_uses_outside_its_lease(
    observed: tuple[list[tuple[str, str]], Controller],
) -> None:
    used = {grant for grant, _ in _used(observed[0]) if grant[1] != "leases"}
    granted, _ = _grants("ClusterRole")
    assert sorted(used - granted) == [], "the controller needs grants the ClusterRole lacks"
    assert sorted(granted - used) == [], "the ClusterRole grants what the controller never uses"


def test_leader_election_role_grants_exactly_the_lease_calls_in_its_namespace(
    observed: tuple[list[tuple[str, str]], Controller],
) -> None:
    lease_calls = [(grant, ns) for grant, ns in _used(observed[0]) if grant[1] == "leases"]
    granted, namespace = _grants("Role")
    assert namespace == NAMESPACE
    assert {ns for _, ns in lease_calls} == {NAMESPACE}
    assert {grant for grant, _ in lease_calls} == granted


def test_the_scenario_reached_the_rare_provisioning_paths(
    observed: tuple[list[tuple[str, str]], Controller],
) -> None:
    """Guards the two tests above: without these reads they would miss grants."""
    reads = {path for verb, path in observed[0] if verb == "get"}
    assert f"/api/v1/namespaces/{APP_NS}/persistentvolumeclaims/raced" in reads
    assert any(path.startswith("/api/v1/persistentvolumes/pvc-") for path in reads)
