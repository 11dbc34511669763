"""Fixtures shared by every test folder."""

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import settings

#: Property tests in `make test` run the same examples every time (derandomized), so a run
#: passes or fails on the code, never on a seed; `make fuzz` (HYPOTHESIS_PROFILE=fuzz)
#: explores at random. Inputs that ever failed are pinned with `@example` in their tests.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@dataclass(frozen=True)
class GlusterHost:
    """A running local glusterd the tests may create volumes on."""

    #: Host name for brick paths: the gluster CLI refuses 127.0.0.1/localhost bricks.
    brick_host: str
    #: Address FUSE clients mount from.
    mount_host: str = "127.0.0.1"


#: How long the session's first question to glusterd may keep being asked again.
GLUSTER_PROBE_SECONDS = 120


def _gluster_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "real GlusterFS tests need root"
    for tool in ("gluster", "glusterd", "mount.glusterfs"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (run scripts/ensure-gluster.sh as root)"
    # A glusterd busy with other volume operations (or a loaded machine) may time out
    # one request: ask again for a while before giving up, since every real-mount
    # test of the session shares this one answer.
    deadline = time.monotonic() + GLUSTER_PROBE_SECONDS
    while True:
        probe = subprocess.run(
            ["gluster", "--mode=script", "--timeout=10", "volume", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if probe.returncode == 0:
            return None
        if time.monotonic() >= deadline:
            return f"glusterd not answering: {probe.stderr.strip() or probe.stdout.strip()}"
        time.sleep(2)


@pytest.fixture(scope="session")
def gluster_host() -> Iterator[GlusterHost]:
    """The local glusterd; skips (or fails, with REQUIRE_GLUSTER=1 as in CI) if absent."""
    reason = _gluster_unavailable_reason()
    if reason is not None:
        if os.environ.get("REQUIRE_GLUSTER") == "1":
            pytest.fail(f"REQUIRE_GLUSTER=1 but {reason}")
        pytest.skip(reason)
    yield GlusterHost(brick_host=socket.gethostname())


#: Folders whose tests check what we ship and deploy (kustomize, kubectl, wheel, image).
DEPLOY_FOLDERS = ("tests/unit/deploy/", "tests/integration/deploy/", "tests/image/")
#: Tests that take many seconds each (whole-system runs, soaks, crash scenarios,
#: many-example property tests), measured with `pytest --durations`.
SLOW_FOLDERS = (
    "tests/e2e/",
    "tests/contract/test_controller_crash.py",
    "tests/integration/csi/test_hostile_input.py",
    "tests/integration/controller/test_command.py",
    "tests/integration/heketi/test_client_resilience.py",
    "tests/integration/test_servers/test_kube_server_scale.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers by what a test needs, so `-m "not slow and not gluster and not deploy"`
    (`make test-fast`) picks the quick, self-contained part: `gluster` for every test
    using the `gluster_host` fixture (directly or through another fixture), `deploy` and
    `slow` by folder."""
    root = config.rootpath
    for item in items:
        where = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        if "gluster_host" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gluster)
        if where.startswith(DEPLOY_FOLDERS):
            item.add_marker(pytest.mark.deploy)
        if where.startswith(SLOW_FOLDERS):
            item.add_marker(pytest.mark.slow)
