"""A Heketi test server over real HTTP and a client tuned for fast tests."""

from collections.abc import Iterator
from dataclasses import replace

import pytest

from provisioner.heketi import HeketiClient, HeketiConfig
from testbed.heketi.server import HeketiTestServer

ADMIN_KEY = "client-tests-admin-key-0123456789abcdef"
USER_KEY = "client-tests-user-key-0123456789abcdef0"


def fast_config(url: str, **changes: object) -> HeketiConfig:
    """Production policy shape, test-sized numbers: polls and backoff in tens of ms."""
    config = HeketiConfig(
        url=url,
        key=ADMIN_KEY,
        request_timeout=5.0,
        operation_deadline=20.0,
        poll_initial=0.01,
        poll_max=0.05,
        retry_base=0.05,
        retry_cap=0.4,
        retry_budget=15.0,
    )
    return replace(config, **changes)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[HeketiTestServer]:
    with HeketiTestServer(
        admin_key=ADMIN_KEY, user_key=USER_KEY, latency_ms=10, device_gib=100
    ) as srv:
        yield srv


@pytest.fixture
def client(server: HeketiTestServer) -> Iterator[HeketiClient]:
    heketi = HeketiClient(fast_config(server.url))
    yield heketi
    heketi.close()
