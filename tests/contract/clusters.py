"""The Kubernetes a contract test runs against: the API test server, or a real cluster.

The `cluster` fixture gives every test body both: the Kubernetes API test server (with
its PV binder and pv-protection, in `make test`), and the cluster of `CONTRACT_KUBECONFIG`
(a cluster-admin kubeconfig, e.g. `../shared/peers/run-kube.sh`'s; `make contract-kube
KUBECONFIG=...` sets it), skipped when unset. Each test works in namespaces and classes
of its own; testbed/clusters.py makes both look the same to a test body.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from testbed.clusters import INSTALL_NS, Cluster, RealCluster, TestServerCluster
from testbed.kube.server import KubeTestServer


@contextlib.contextmanager
def cluster_of(kind: str) -> Iterator[Cluster]:
    if kind == "kubeapiserver":
        config = os.environ.get("CONTRACT_KUBECONFIG")
        if not config:
            pytest.skip("no real cluster: make contract-kube KUBECONFIG=<cluster-admin kubeconfig>")
        real = RealCluster(config)
        real.install_rbac()
        real.remove_leases()
        yield real
        return
    with KubeTestServer(binder=True) as server:
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INSTALL_NS}})
        yield TestServerCluster(server)


@pytest.fixture(params=["kubetestserver", "kubeapiserver"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with cluster_of(request.param) as made:
        yield made
