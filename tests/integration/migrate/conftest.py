"""A cluster with in-tree GlusterFS volumes for `migrate` (test servers, no Gluster)."""

from collections.abc import Iterator

import pytest

from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from tests.integration.migrate.world import (
    NS,
    World,
    heketi_class,
    heketi_client,
    heketi_secret,
)


@pytest.fixture
def world() -> Iterator[World]:
    with (
        KubeTestServer(binder=True, pv_protection=True) as kube,
        HeketiTestServer(admin_key="migrate-admin-key") as heketi,
    ):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        kube.create(heketi_secret())
        kube.create(heketi_class(heketi.url))
        client = heketi_client(heketi.url)
        try:
            yield World(kube, heketi, client)
        finally:
            client.close()
