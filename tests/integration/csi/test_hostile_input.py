"""Every Node and Controller RPC driven with generated, hostile values (hypothesis).

The services run behind the real gRPC server on a unix socket: the Node service over
the real `SystemMounter` whose command runner is a `FakeKernel` (records every argv,
plays the mount table, mounts nothing), the Controller service over the real Heketi
client against the Heketi test server. Invariants, for every call:

* the server answers within the deadline, with OK or a code the CSI spec documents
  for that situation, never a crash ("internal error in ...");
* every command run has an allowed shape whose arguments pass our own validation,
  and every path it touches resolves inside the kubelet directory;
* no file or directory appears outside the kubelet directory.

`HOSTILE_EXAMPLES` sets examples per RPC (default keeps `make test` fast; `make fuzz`
raises it). In `make test` the examples are derandomized (the `deterministic` profile of
tests/conftest.py: the same examples on every run); `make fuzz` explores at random. Every
input that ever failed is pinned as an `@example` of its test, so it runs every time.
Generated paths start with `KUBELET`, which stands for the world's kubelet directory.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from provisioner import log, names
from provisioner.csi import csi_pb2, csi_pb2_grpc, server
from provisioner.csi.controller import ControllerService
from provisioner.csi.heketi_access import HeketiDefaults
from provisioner.csi.identity import IdentityService
from provisioner.csi.mounter import SystemMounter
from provisioner.csi.node import NodeConfig, NodeService
from provisioner.volumes import VolumeService
from testbed.heketi.server import HeketiTestServer
from tests.integration.csi.controller_harness import fast_client
from tests.integration.csi.fake_kernel import FakeKernel

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "600"))
#: A call slower than this counts as a hang.
CALL_DEADLINE = 10.0
KEY = "hostile-admin-key"

Code = grpc.StatusCode
#: Codes the CSI spec documents for request errors and conditions of these RPCs.
DOCUMENTED = frozenset(
    {
        Code.OK,
        Code.INVALID_ARGUMENT,
        Code.NOT_FOUND,
        Code.ALREADY_EXISTS,
        Code.FAILED_PRECONDITION,
        Code.ABORTED,
        Code.OUT_OF_RANGE,
        Code.RESOURCE_EXHAUSTED,
        Code.PERMISSION_DENIED,  # Heketi refused the user or key a request named
        Code.UNIMPLEMENTED,
    }
)

HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@dataclass(frozen=True)
class World:
    base: Path  # holds kubelet/, outside/, logs
    kubelet: Path
    outside: Path
    kernel: FakeKernel
    heketi: HeketiTestServer
    node: csi_pb2_grpc.NodeStub
    controller: csi_pb2_grpc.ControllerStub

    def outside_entries(self) -> set[str]:
        return {
            str(Path(d) / name)
            for d, dirs, files in os.walk(self.base)
            if not Path(d).is_relative_to(self.kubelet)
            for name in (*dirs, *files)
        }


@pytest.fixture(scope="module")
def quiet_logs() -> Iterator[None]:
    """Thousands of refused calls would log thousands of warnings: keep errors only."""
    saved = structlog.get_config()
    log.configure(level="error", json=True)
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, quiet_logs: None) -> Iterator[World]:
    base = tmp_path_factory.mktemp("hostile")
    kubelet, outside, logs = base / "kubelet", base / "outside", base / "logs"
    for directory in (kubelet / "pods", kubelet / "plugins", outside, logs):
        directory.mkdir(parents=True)
    (kubelet / "pods" / "escape").symlink_to(outside)  # a symlink out of the kubelet dir
    (kubelet / "plugins" / "root").symlink_to("/")
    kernel = FakeKernel(root=kubelet, mountinfo=base / "mountinfo", log_dir=logs)
    with HeketiTestServer(admin_key=KEY) as heketi:
        endpoint = f"unix://{base}/csi.sock"
        node = NodeService(
            config=NodeConfig(node_id="fuzz-node", kubelet_dir=kubelet, mount_log_dir=logs),
            mounter=SystemMounter(runner=kernel, mountinfo=kernel.mountinfo),
        )
        controller = ControllerService(
            volumes=VolumeService(clients=fast_client),
            heketi=HeketiDefaults(url=heketi.url, key=KEY),
        )
        identity = IdentityService(driver_name=names.DRIVER_NAME, controller_service=True)
        grpc_server = server.serve(endpoint, identity=identity, node=node, controller=controller)
        channel = grpc.insecure_channel(endpoint)
        try:
            yield World(
                base, kubelet, outside, kernel, heketi,
                csi_pb2_grpc.NodeStub(channel), csi_pb2_grpc.ControllerStub(channel),
            )  # fmt: skip
        finally:
            channel.close()
            server.stop(grpc_server, endpoint=endpoint, grace=1.0)


# ---------------------------------------------------------------------------- strategies

#: Protobuf strings are UTF-8: no lone surrogates. Everything else goes, NUL included.
_chars = st.characters(blacklist_categories=("Cs",))
_nasty_text = st.sampled_from(
    ["", " ", "..", ".", "-o", "-oremount", "--bind", "a,b", "a b", "a=b", "x\x00y", "\n",
     "ro", "rw", "$(id)", "`id`", ";id", "*", "~", "\\", "%2e%2e", "é", "💥", "a" * 300,
     "-" * 5, "127.0.0.1", "host:/vol", "/etc/passwd"]
)  # fmt: skip
_text = st.one_of(
    _nasty_text, st.text(_chars, max_size=40), st.text(_chars, min_size=200, max_size=400)
)
_segment = st.one_of(
    st.sampled_from(["..", ".", "", "escape", "root", "pods", "plugins", "globalmount", "mount",
                     "a\x00b", "x" * 256]),
    st.text(_chars, min_size=1, max_size=12).filter(lambda s: "/" not in s),
)  # fmt: skip


#: Stands for the world's kubelet directory at the start of a generated path.
KUBELET = "<kubelet>"
#: The staged volume the publish test binds from (see `_staged`).
STAGED = f"{KUBELET}/plugins/staged"


def _at(world: World, path: str) -> str:
    """A generated path with `KUBELET` replaced by the world's kubelet directory."""
    return str(world.kubelet) + path[len(KUBELET) :] if path.startswith(KUBELET) else path


@st.composite
def _paths(draw: Any) -> str:
    if draw(st.booleans()):  # well-formed, possibly through a symlink out of the kubelet dir
        area = draw(st.sampled_from(["pods", "plugins"]))
        via = draw(st.sampled_from(["escape", "root", "pod-1", "escape/deeper", "root/tmp"]))
        return f"{KUBELET}/{area}/{via}/{draw(st.sampled_from(['mount', 'globalmount']))}"
    segments = draw(st.lists(_segment, max_size=5))
    start = draw(st.sampled_from([KUBELET, KUBELET + "/", "/tmp", "/", "", "relative"]))
    return "/".join([start.rstrip("/") if start != "/" else "", *segments]) or start


def _flags() -> st.SearchStrategy[list[str]]:
    allowed = ["ro", "rw", "noatime", "acl", "log-level=DEBUG", "direct-io-mode=enable"]
    return st.lists(st.one_of(st.sampled_from(allowed), _text), max_size=4)


_WRITER = csi_pb2.VolumeCapability.AccessMode.Mode.MULTI_NODE_MULTI_WRITER
_VALID_CAPABILITY = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=_WRITER),
)


@st.composite
def _capability(draw: Any) -> csi_pb2.VolumeCapability:
    if draw(st.booleans()):
        return _VALID_CAPABILITY
    mode = draw(st.integers(min_value=0, max_value=12))
    access = csi_pb2.VolumeCapability.AccessMode(mode=mode)  # type: ignore[arg-type]
    if draw(st.booleans()) and draw(st.booleans()):
        return csi_pb2.VolumeCapability(
            block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=access
        )
    fs_type = draw(st.one_of(st.sampled_from(["", "glusterfs", "ext4"]), _text))
    mount = csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=draw(_flags()))
    return csi_pb2.VolumeCapability(mount=mount, access_mode=access)


_servers = st.lists(
    st.one_of(st.sampled_from(["127.0.0.1", "gl-1", "::1", "-oremount", "h:/v", "a b"]), _text),
    min_size=1, max_size=4,
).map(",".join)  # fmt: skip
_context = st.one_of(
    st.just({"servers": "127.0.0.1,gluster-2", "volume": "vol-1"}),
    st.fixed_dictionaries({"servers": _servers, "volume": st.one_of(st.just("vol-1"), _text)}),
    st.dictionaries(_text, _text, max_size=3),
)
_int64 = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 2**30, 2**40, 2**62, 2**63 - 1, -(2**63)]),
)


# ---------------------------------------------------------------------------- invariants


def _call(world: World, method: Any, request: Any) -> None:
    before = world.outside_entries()
    commands_before = len(world.kernel.commands)
    try:
        method(request, timeout=CALL_DEADLINE)
        code, details = Code.OK, ""
    except grpc.RpcError as error:
        code, details = error.code(), error.details() or ""
    assert code is not Code.DEADLINE_EXCEEDED, f"call hung: {request!r}"
    assert not details.startswith("internal error in"), f"server crashed: {details}"
    assert code in DOCUMENTED, f"undocumented code {code.name}: {details} for {request!r}"
    assert world.kernel.violations == [], world.kernel.violations
    assert world.outside_entries() == before, "something was created outside the kubelet dir"
    for command in world.kernel.commands[commands_before:]:
        assert all("\x00" not in arg for arg in command)


# ---------------------------------------------------------------------------- Node RPCs


_volume_ids = st.one_of(st.just("v1"), _text)
_secrets = st.dictionaries(_text, _text, max_size=2)


@HOSTILE
@given(volume_id=_volume_ids, staging=_paths(), capability=_capability(), context=_context,
       secrets=_secrets)  # fmt: skip
# Found by this test: mkdir and the mount went through a symlink out of the kubelet dir.
@example(volume_id="v1", staging=f"{KUBELET}/pods/escape/mount", capability=_VALID_CAPABILITY,
         context={"servers": "127.0.0.1", "volume": "vol-1"}, secrets={})  # fmt: skip
@example(volume_id="v1", staging=f"{KUBELET}/plugins/root/tmp/globalmount",
         capability=_VALID_CAPABILITY, context={"servers": "127.0.0.1", "volume": "vol-1"},
         secrets={})  # fmt: skip
def test_node_stage_survives_hostile_requests(
    world: World, volume_id: str, staging: str, capability: csi_pb2.VolumeCapability,
    context: dict[str, str], secrets: dict[str, str],
) -> None:  # fmt: skip
    request = csi_pb2.NodeStageVolumeRequest(
        volume_id=volume_id, staging_target_path=_at(world, staging),
        volume_capability=capability, volume_context=context, secrets=secrets,
    )  # fmt: skip
    _call(world, world.node.NodeStageVolume, request)


def _staged(world: World) -> None:
    """The Gluster volume the publish test binds from, mounted at STAGED."""
    staging = Path(_at(world, STAGED))
    staging.mkdir(exist_ok=True)
    if str(staging) not in world.kernel.mounted():
        world.kernel(["mount", "-t", "glusterfs", "-o", f"log-file={world.kernel.log_dir}/v.log",
                      "127.0.0.1:/vol-1", str(staging)], timeout=1)  # fmt: skip


@HOSTILE
@given(volume_id=_volume_ids, staging=st.one_of(st.just(STAGED), _paths()), target=_paths(),
       capability=_capability(), readonly=st.booleans(), context=_context)  # fmt: skip
# Found by this test: a mount point holding a character str.splitlines() splits on (and,
# read as text in universal-newline mode, "\r") made every later call INTERNAL.
@example(volume_id="v1", staging=STAGED, target=f"{KUBELET}/pods/a\x85b",
         capability=_VALID_CAPABILITY, readonly=False, context={})  # fmt: skip
@example(volume_id="v1", staging=STAGED, target=f"{KUBELET}/pods/a\u2028b",
         capability=_VALID_CAPABILITY, readonly=False, context={})  # fmt: skip
@example(volume_id="v1", staging=STAGED, target=f"{KUBELET}/pods/\xfe\r",
         capability=_VALID_CAPABILITY, readonly=True, context={})  # fmt: skip
def test_node_publish_survives_hostile_requests(
    world: World, volume_id: str, staging: str, target: str,
    capability: csi_pb2.VolumeCapability, readonly: bool, context: dict[str, str],
) -> None:  # fmt: skip
    _staged(world)
    request = csi_pb2.NodePublishVolumeRequest(
        volume_id=volume_id, staging_target_path=_at(world, staging),
        target_path=_at(world, target), volume_capability=capability, readonly=readonly,
        volume_context=context,
    )  # fmt: skip
    _call(world, world.node.NodePublishVolume, request)


_NODE_RPCS = ["unpublish", "unstage", "stats", "info", "caps", "expand"]


@HOSTILE
@given(volume_id=_volume_ids, path=_paths(), rpc=st.sampled_from(_NODE_RPCS))
# Found by this test: a path component longer than NAME_MAX crashed NodeUnpublishVolume.
@example(volume_id="v1", path=f"{KUBELET}/pods/{'x' * 256}", rpc="unpublish")
@example(volume_id="v1", path=f"{KUBELET}/pods/\r", rpc="stats")
def test_node_unpublish_unstage_and_stats_survive_hostile_requests(
    world: World, volume_id: str, path: str, rpc: str
) -> None:
    path = _at(world, path)
    requests = {
        "unpublish": (world.node.NodeUnpublishVolume,
                      csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=path)),
        "unstage": (world.node.NodeUnstageVolume, csi_pb2.NodeUnstageVolumeRequest(
            volume_id=volume_id, staging_target_path=path)),
        "stats": (world.node.NodeGetVolumeStats,
                  csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume_id, volume_path=path)),
        "info": (world.node.NodeGetInfo, csi_pb2.NodeGetInfoRequest()),
        "caps": (world.node.NodeGetCapabilities, csi_pb2.NodeGetCapabilitiesRequest()),
        "expand": (world.node.NodeExpandVolume, csi_pb2.NodeExpandVolumeRequest(
            volume_id=volume_id, volume_path=path)),
    }  # fmt: skip
    method, request = requests[rpc]
    _call(world, method, request)


# ---------------------------------------------------------------------------- Controller RPCs


def _parameters(world: World) -> st.SearchStrategy[dict[str, str]]:
    valid_keys = [
        "volumetype", "gidMin", "gidMax", "volumeoptions", "volumenameprefix",
        "clusterid", "snapfactor", "restauthenabled", "restuser", "restcafile",
    ]  # fmt: skip
    extra = st.dictionaries(st.one_of(st.sampled_from(valid_keys), _text), _text, max_size=3)
    url = st.one_of(st.just(world.heketi.url), _text, st.just("http://admin:pw@h:1"))
    return st.builds(lambda u, e: {"resturl": u, **e}, url, extra)


_capacity = st.builds(
    lambda r, lim: csi_pb2.CapacityRange(required_bytes=r, limit_bytes=lim), _int64, _int64
)


@HOSTILE
@given(data=st.data())
def test_create_volume_survives_hostile_requests(world: World, data: st.DataObject) -> None:
    request = csi_pb2.CreateVolumeRequest(
        name=data.draw(st.one_of(st.just("pvc-fuzz"), _text)),
        capacity_range=data.draw(_capacity),
        volume_capabilities=data.draw(st.lists(_capability(), max_size=2)),
        parameters=data.draw(_parameters(world)),
        secrets=data.draw(st.one_of(st.just({}), st.dictionaries(_text, _text, max_size=2))),
    )
    _call(world, world.controller.CreateVolume, request)


@HOSTILE
@given(data=st.data())
def test_other_controller_rpcs_survive_hostile_requests(world: World, data: st.DataObject) -> None:
    volume_id = data.draw(st.one_of(st.just("0" * 32), _text))
    caps = data.draw(st.lists(_capability(), max_size=2))
    params = data.draw(_parameters(world))
    rpc = data.draw(st.sampled_from(["delete", "validate", "expand", "list", "capacity", "caps",
                                     "publish"]))  # fmt: skip
    c = world.controller
    requests = {
        "delete": (c.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume_id)),
        "validate": (c.ValidateVolumeCapabilities, csi_pb2.ValidateVolumeCapabilitiesRequest(
            volume_id=volume_id, volume_capabilities=caps, parameters=params)),
        "expand": (c.ControllerExpandVolume, csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume_id, capacity_range=data.draw(_capacity))),
        "list": (c.ListVolumes, csi_pb2.ListVolumesRequest(
            max_entries=data.draw(st.integers(-(2**31), 2**31 - 1)),
            starting_token=data.draw(_text))),
        "capacity": (c.GetCapacity, csi_pb2.GetCapacityRequest(
            volume_capabilities=caps, parameters=params)),
        "caps": (c.ControllerGetCapabilities, csi_pb2.ControllerGetCapabilitiesRequest()),
        "publish": (c.ControllerPublishVolume, csi_pb2.ControllerPublishVolumeRequest(
            volume_id=volume_id, node_id=data.draw(_text))),
    }  # fmt: skip
    method, request = requests[rpc]
    _call(world, method, request)
