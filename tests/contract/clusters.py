"""The Kubernetes a contract test runs against: the API test server, or a real cluster.

The `cluster` fixture gives every test body both: the Kubernetes API test server (with
its PV binder and pv-protection, in `make test`), and the cluster of `CONTRACT_KUBECONFIG`
(a cluster-admin kubeconfig, e.g. `../shared/peers/run-kube.sh`'s; `make contract-kube
KUBECONFIG=...` sets it), skipped when unset. On a real cluster our processes run as the
service accounts of deploy/ with its RBAC applied (a token from the TokenRequest API),
each test works in namespaces and classes of its own, and objects are read and written
over HTTP as plain dicts on both, so one test body sees the two the same way.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.kube.api import KubeAlreadyExists, KubeApi, KubeNotFound, path_for
from provisioner.kube.client import api_client
from testbed.kube.server import KubeTestServer

Obj = dict[str, Any]
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: The namespace of deploy/ (the service accounts, the leader-election Lease).
INSTALL_NS = "glusterfs-provisioner"
#: Service accounts of deploy/ and the manifests that grant them their rights.
ACCOUNTS = {
    "controller": ("glusterfs-provisioner-controller", DEPLOY / "base" / "controller-rbac.yaml"),
    "migrate": ("glusterfs-provisioner-migrate", DEPLOY / "migrate" / "migrate-rbac.yaml"),
    "node": ("glusterfs-provisioner-node", DEPLOY / "base" / "node-serviceaccount.yaml"),
}
#: plural → (API group, namespaced)
RESOURCES = {
    "namespaces": ("", False),
    "persistentvolumes": ("", False),
    "persistentvolumeclaims": ("", True),
    "secrets": ("", True),
    "events": ("", True),
    "endpoints": ("", True),
    "services": ("", True),
    "serviceaccounts": ("", True),
    "storageclasses": ("storage.k8s.io", False),
    "leases": ("coordination.k8s.io", True),
    "clusterroles": ("rbac.authorization.k8s.io", False),
    "clusterrolebindings": ("rbac.authorization.k8s.io", False),
    "roles": ("rbac.authorization.k8s.io", True),
    "rolebindings": ("rbac.authorization.k8s.io", True),
}
PLURAL_OF_KIND = {
    "Namespace": "namespaces", "PersistentVolume": "persistentvolumes",
    "PersistentVolumeClaim": "persistentvolumeclaims", "Secret": "secrets",
    "Endpoints": "endpoints", "Service": "services", "ServiceAccount": "serviceaccounts",
    "StorageClass": "storageclasses", "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings", "Role": "roles", "RoleBinding": "rolebindings",
}  # fmt: skip


def path(plural: str, name: str | None = None, namespace: str | None = None, sub: str = "") -> str:
    group, namespaced = RESOURCES[plural]
    scope = (namespace or "") if namespaced and (namespace or name) else None
    return path_for(group=group, plural=plural, name=name, subresource=sub or None, namespace=scope)


class Cluster:
    """A Kubernetes API reached over HTTP as cluster admin, plus kubeconfigs for our processes."""

    #: "kubetestserver" or "kubeapiserver" (the pytest id; `make contract-kube` selects the latter)
    kind = ""

    def __init__(self, admin: KubeApi) -> None:
        self.api = admin

    @property
    def real(self) -> bool:
        return self.kind == "kubeapiserver"

    def create(self, obj: Obj) -> Obj:
        plural = PLURAL_OF_KIND[obj["kind"]]
        namespace = obj["metadata"].get("namespace")
        return self.api.create(path(plural, namespace=namespace), obj)

    def get(self, plural: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self.api.get(path(plural, name, namespace))
        except KubeNotFound:
            return None

    def list(self, plural: str, namespace: str | None = None) -> list[Obj]:
        items: list[Obj] = self.api.list(path(plural, namespace=namespace))["items"]
        return items

    def delete(self, plural: str, name: str, namespace: str | None = None) -> None:
        with contextlib.suppress(KubeNotFound):
            self.api.delete(path(plural, name, namespace))

    def patch(self, plural: str, name: str, namespace: str | None, change: Obj) -> Obj:
        return self.api.merge_patch(path(plural, name, namespace), change)

    def events(self, namespace: str, name: str) -> builtins.list[Obj]:
        """The Events about object `name` in `namespace` (what `kubectl describe` lists)."""
        return [
            e for e in self.list("events", namespace) if e["involvedObject"].get("name") == name
        ]

    def namespace(self, label: str) -> str:
        """A fresh namespace of this test's own."""
        name = f"{label}-{uuid.uuid4().hex[:6]}"
        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    def kubeconfig(self, account: str, where: Path) -> Path:
        """A kubeconfig for our process that runs as `account` (a key of ACCOUNTS)."""
        raise NotImplementedError


class TestServerCluster(Cluster):
    """The Kubernetes API test server; it has no authentication or RBAC, so every
    account's kubeconfig reaches it the same way (a stated limit, docs/test-servers.md)."""

    kind = "kubetestserver"

    def __init__(self, server: KubeTestServer) -> None:
        super().__init__(KubeApi(server.api_client()))
        self.server = server

    def kubeconfig(self, account: str, where: Path) -> Path:
        return self.server.write_kubeconfig(where / f"kubeconfig-{account}")


class RealCluster(Cluster):
    """A real cluster through a cluster-admin kubeconfig."""

    kind = "kubeapiserver"

    def __init__(self, admin_kubeconfig: str) -> None:
        super().__init__(KubeApi(api_client(admin_kubeconfig)))
        self._admin = yaml.safe_load(Path(admin_kubeconfig).read_text(encoding="utf-8"))
        self._admin_path = Path(admin_kubeconfig).resolve()

    def install_rbac(self) -> None:
        """deploy/'s namespace, service accounts and roles, as a real install makes them."""
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INSTALL_NS}})
        for _, manifest in ACCOUNTS.values():
            for doc in yaml.safe_load_all(manifest.read_text(encoding="utf-8")):
                if doc:
                    if RESOURCES[PLURAL_OF_KIND[doc["kind"]]][1]:
                        doc["metadata"].setdefault("namespace", INSTALL_NS)
                    self.apply(doc)

    def apply(self, obj: Obj) -> None:
        """Create `obj`, or replace what is there under its name."""
        try:
            self.create(obj)
        except KubeAlreadyExists:
            plural = PLURAL_OF_KIND[obj["kind"]]
            meta = obj["metadata"]
            found = self.get(plural, meta["name"], meta.get("namespace")) or {}
            meta["resourceVersion"] = found["metadata"]["resourceVersion"]
            self.api.update(path(plural, meta["name"], meta.get("namespace")), obj)

    def kubeconfig(self, account: str, where: Path) -> Path:
        """A token of the service account (TokenRequest API) in a copy of the admin's
        kubeconfig: the process gets exactly the rights deploy/ gives the account."""
        name, _ = ACCOUNTS[account]
        return self.token_kubeconfig(name, where / f"kubeconfig-{account}")

    def token_kubeconfig(self, name: str, target: Path) -> Path:
        """A kubeconfig with a token of service account `name` of INSTALL_NS."""
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "spec": {"expirationSeconds": 7200}}  # fmt: skip
        answer = self.api.create(path("serviceaccounts", name, INSTALL_NS, "token"), request)
        config = json.loads(json.dumps(self._admin))
        for entry in config["clusters"]:
            ca = entry["cluster"].get("certificate-authority")
            if ca and not os.path.isabs(ca):
                entry["cluster"]["certificate-authority"] = str(self._admin_path.parent / ca)
        for entry in config["users"]:
            entry["user"] = {"token": answer["status"]["token"]}
        target.write_text(json.dumps(config), encoding="utf-8")
        return target


@contextlib.contextmanager
def cluster_of(kind: str) -> Iterator[Cluster]:
    if kind == "kubeapiserver":
        config = os.environ.get("CONTRACT_KUBECONFIG")
        if not config:
            pytest.skip("no real cluster: make contract-kube KUBECONFIG=<cluster-admin kubeconfig>")
        real = RealCluster(config)
        real.install_rbac()
        yield real
        return
    with KubeTestServer(binder=True, pv_protection=True) as server:
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INSTALL_NS}})
        yield TestServerCluster(server)


@pytest.fixture(params=["kubetestserver", "kubeapiserver"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with cluster_of(request.param) as made:
        yield made
