"""Fixtures of the test servers' contract tests.

The Kubernetes API test server's contract tests share one server per module;
a module that needs another kind of `server` (the Heketi test server's tests)
defines its own fixture of that name, which takes precedence.
"""

from collections.abc import Iterator

import pytest

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import Api, api_for, new_namespace


@pytest.fixture(scope="module")
def server() -> Iterator[KubeTestServer]:
    """A Kubernetes API test server for the module."""
    with KubeTestServer() as kube:
        yield kube


@pytest.fixture(scope="module")
def api(server: KubeTestServer) -> Api:
    """The real kubernetes client's APIs, pointed at `server`."""
    return api_for(server)


@pytest.fixture
def ns(api: Api) -> str:
    """A fresh namespace for one test."""
    return new_namespace(api)
