"""The fakes the tests inject, checked by mypy against the Protocols they stand in for.

A fake that drifts from its Protocol (a method renamed, a keyword added to the real
seam but not to the fake) would still pass the tests that use it while no longer
standing in for the real thing. `make lint` type-checks this module, the fakes and the
contract tests with `mypy --strict`; nothing here runs under pytest.
"""

from provisioner.core.volumes import HeketiApi
from provisioner.csi.mounter import Mounter, Runner
from tests.integration.csi.fake_kernel import FakeKernel
from tests.unit.csi.test_mounter import FakeRunner
from tests.unit.csi.test_node import FakeMounter
from tests.unit.fake_heketi import FakeHeketi


def fake_heketi_is_a_heketi_api(fake: FakeHeketi) -> HeketiApi:
    return fake


def fake_mounter_is_a_mounter(fake: FakeMounter) -> Mounter:
    return fake


def fake_runner_is_a_runner(fake: FakeRunner) -> Runner:
    return fake


def fake_kernel_is_a_runner(fake: FakeKernel) -> Runner:
    return fake
