"""The node plugin process: bad requests, info calls, socket and SIGTERM handling.

None of these need Gluster: every request here is refused before anything is
mounted, or asks about the plugin itself.
"""

import os
import signal
import stat
from pathlib import Path
from typing import Any

import grpc
import pytest

from provisioner import __version__
from provisioner.core.annotations import DRIVER_NAME
from provisioner.csi import csi_pb2, server
from tests.integration.csi.conftest import Plugin, start_plugin, stop_plugin

Mode = csi_pb2.VolumeCapability.AccessMode.Mode
Rpc = csi_pb2.NodeServiceCapability.RPC

MOUNT = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.MULTI_NODE_MULTI_WRITER),
)
CONTEXT = {"servers": "gluster-1.example.com,10.0.0.2", "volume": "vol_0123abcd"}
INVALID = "INVALID_ARGUMENT"
ALLOWED_FLAGS = (
    "_netdev, acl, atime, diratime, enable-ino32, fopen-keep-cache, lazyatime, "
    "noatime, nodev, nodiratime, noexec, nolazyatime, norelatime, nostrictatime, nosuid, "
    "relatime, resolve-gids, ro, rw, strictatime"
)


def mount_with(
    *, flags: tuple[str, ...] = (), fs_type: str = "", mode: int = Mode.MULTI_NODE_MULTI_WRITER
) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=list(flags)),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


BLOCK = csi_pb2.VolumeCapability(
    block=csi_pb2.VolumeCapability.BlockVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
)
NO_ACCESS_TYPE = csi_pb2.VolumeCapability(
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER)
)


def base_request(method: str) -> dict[str, Any]:
    """A valid request for `method`; `{k}` stands for the kubelet directory."""
    staging, target = "{k}/plugins/vol/globalmount", "{k}/pods/uid/mount"
    return {
        "NodeStageVolume": dict(volume_id="v1", staging_target_path=staging,
                                volume_capability=MOUNT, volume_context=CONTEXT),
        "NodePublishVolume": dict(volume_id="v1", staging_target_path=staging,
                                  target_path=target, volume_capability=MOUNT),
        "NodeUnpublishVolume": dict(volume_id="v1", target_path=target),
        "NodeUnstageVolume": dict(volume_id="v1", staging_target_path=staging),
        "NodeGetVolumeStats": dict(volume_id="v1", volume_path=staging),
        "NodeExpandVolume": dict(volume_id="v1", volume_path=staging),
    }[method]  # fmt: skip


def stage(**change: Any) -> tuple[str, dict[str, Any]]:
    return "NodeStageVolume", change


# (method, changes to the valid request, expected code, expected message)
BAD_REQUESTS = [
    pytest.param(*stage(volume_id=""), INVALID, "volume_id is required", id="stage-no-volume-id"),
    pytest.param(*stage(volume_id="x" * 129), INVALID, "volume_id must be at most 128 bytes",
                 id="stage-volume-id-too-long"),
    pytest.param(*stage(staging_target_path=""), INVALID, "staging_target_path is required",
                 id="stage-no-staging-path"),
    pytest.param(*stage(volume_capability=None), INVALID, "volume_capability is required",
                 id="stage-no-capability"),
    pytest.param(*stage(volume_capability=BLOCK), INVALID,
                 "volume_capability: block access is not supported; GlusterFS volumes are "
                 "filesystems (use access type mount / volumeMode: Filesystem)", id="stage-block"),
    pytest.param(*stage(volume_capability=NO_ACCESS_TYPE), INVALID,
                 "volume_capability: access type mount is required", id="stage-no-access-type"),
    pytest.param(*stage(volume_capability=mount_with(mode=Mode.UNKNOWN)), INVALID,
                 "volume_capability.access_mode.mode is required", id="stage-unknown-mode"),
    pytest.param(*stage(volume_capability=mount_with(fs_type="ext4")), INVALID,
                 "volume_capability.mount.fs_type 'ext4' is not supported; use 'glusterfs' or "
                 "leave it empty", id="stage-fs-type"),
    pytest.param(*stage(volume_context={"volume": "v"}), INVALID,
                 "volume_context key 'servers' is required", id="stage-no-servers"),
    pytest.param(*stage(volume_context={"servers": "h1"}), INVALID,
                 "volume_context key 'volume' is required", id="stage-no-volume-name"),
    pytest.param(*stage(volume_context={"servers": "h1,log-file=/etc/passwd", "volume": "v"}),
                 INVALID, "volume_context 'servers': 'log-file=/etc/passwd' is not a valid host "
                 "name or IPv4 address", id="stage-server-smuggles-option"),
    pytest.param(*stage(volume_context={"servers": "h1 -o ro", "volume": "v"}), INVALID,
                 "volume_context 'servers': 'h1 -o ro' is not a valid host name or IPv4 address",
                 id="stage-server-with-spaces"),
    pytest.param(*stage(volume_context={"servers": "::1", "volume": "v"}), INVALID,
                 "volume_context 'servers': IPv6 address '::1' is not supported; use a host name",
                 id="stage-server-ipv6"),
    pytest.param(*stage(volume_context={"servers": "h1", "volume": "../etc"}), INVALID,
                 "volume_context 'volume': '../etc' is not a valid Gluster volume name (letters, "
                 "digits, '_', '-' and '.', at most 127, not starting with '-' or '.')",
                 id="stage-volume-name-path"),
    pytest.param(*stage(volume_context={"servers": "h1", "volume": "v,ro"}), INVALID,
                 "volume_context 'volume': 'v,ro' is not a valid Gluster volume name (letters, "
                 "digits, '_', '-' and '.', at most 127, not starting with '-' or '.')",
                 id="stage-volume-name-comma"),
    pytest.param(*stage(volume_context={"servers": "h1", "volume": "a..b"}), INVALID,
                 "volume_context 'volume': 'a..b' is not a valid Gluster volume name (letters, "
                 "digits, '_', '-' and '.', at most 127, not starting with '-' or '.')",
                 id="stage-volume-name-dotdot"),
    pytest.param(*stage(staging_target_path="plugins/vol"), INVALID,
                 "staging_target_path 'plugins/vol' must be an absolute path",
                 id="stage-relative-path"),
    pytest.param(*stage(staging_target_path="{k}/plugins/../../etc"), INVALID,
                 "staging_target_path '{k}/plugins/../../etc' must be normalised (expected "
                 "'{parent}/etc')", id="stage-path-with-dotdot"),
    pytest.param(*stage(staging_target_path="/etc/kubelet"), INVALID,
                 "staging_target_path '/etc/kubelet' must be inside the kubelet directory {k}",
                 id="stage-path-outside-kubelet"),
    pytest.param(*stage(staging_target_path="{k}"), INVALID,
                 "staging_target_path '{k}' must be inside the kubelet directory {k}",
                 id="stage-path-is-kubelet-dir"),
    pytest.param(*stage(volume_capability=mount_with(flags=("suid",))), INVALID,
                 f"mount flag 'suid' is not allowed; allowed: {ALLOWED_FLAGS}, "
                 "attribute-timeout=…, background-qlen=…, congestion-threshold=…, "
                 "direct-io-mode=…, entry-timeout=…, fetch-attempts=…, gid-timeout=…, "
                 "invalidate-limit=…, kernel-writeback-cache=…, log-level=…, lru-limit=…, "
                 "negative-timeout=…, reader-thread-count=…, transport=…, use-readdirp=…",
                 id="stage-flag-not-allowed"),
    pytest.param(*stage(volume_capability=mount_with(flags=("log-file=/etc/cron.d/x",))),
                 INVALID, "mount flag 'log-file' is set by the driver and cannot be given in "
                 "mountOptions", id="stage-flag-driver-owned"),
    pytest.param(*stage(volume_capability=mount_with(flags=("log-level=LOUD",))), INVALID,
                 "mount flag 'log-level=LOUD': value must match "
                 "TRACE|DEBUG|INFO|WARNING|ERROR|CRITICAL|NONE", id="stage-flag-bad-value"),
    pytest.param(*stage(volume_capability=mount_with(flags=("ro", "rw"))), INVALID,
                 "mount flags 'ro' and 'rw' contradict each other", id="stage-flags-ro-and-rw"),
    pytest.param("NodePublishVolume", {"target_path": ""}, INVALID, "target_path is required",
                 id="publish-no-target"),
    # csi-sanity's NodePublishVolume "should fail when no volume id is provided": nothing at all.
    pytest.param("NodePublishVolume", {"volume_id": None, "staging_target_path": None,
                                       "target_path": None, "volume_capability": None}, INVALID,
                 "volume_id is required", id="publish-empty-request"),
    # csi-sanity's "should fail when no target path is provided": only a volume_id.
    pytest.param("NodePublishVolume", {"staging_target_path": None, "target_path": None,
                                       "volume_capability": None}, INVALID,
                 "target_path is required", id="publish-only-a-volume-id"),
    # csi-sanity's "should fail when no volume capability is provided": no staging path either.
    pytest.param("NodePublishVolume", {"staging_target_path": None, "volume_capability": None},
                 INVALID, "volume_capability is required", id="publish-no-capability"),
    pytest.param("NodePublishVolume", {"staging_target_path": ""}, "FAILED_PRECONDITION",
                 "staging_target_path is required: this plugin has STAGE_UNSTAGE_VOLUME; call "
                 "NodeStageVolume first and pass its staging_target_path",
                 id="publish-no-staging-path"),
    pytest.param("NodePublishVolume", {"volume_capability": BLOCK}, INVALID,
                 "volume_capability: block access is not supported; GlusterFS volumes are "
                 "filesystems (use access type mount / volumeMode: Filesystem)",
                 id="publish-block"),
    pytest.param("NodePublishVolume", {}, "FAILED_PRECONDITION",
                 "volume v1 is not staged at {k}/plugins/vol/globalmount; call NodeStageVolume "
                 "first", id="publish-not-staged"),
    pytest.param("NodeUnpublishVolume", {"volume_id": ""}, INVALID, "volume_id is required",
                 id="unpublish-no-volume-id"),
    pytest.param("NodeUnpublishVolume", {"target_path": "/var/lib/docker/x"}, INVALID,
                 "target_path '/var/lib/docker/x' must be inside the kubelet directory {k}",
                 id="unpublish-path-outside-kubelet"),
    pytest.param("NodeUnpublishVolume", {"target_path": ""}, INVALID, "target_path is required",
                 id="unpublish-no-target"),
    pytest.param("NodeUnstageVolume", {"volume_id": ""}, INVALID, "volume_id is required",
                 id="unstage-no-volume-id"),
    pytest.param("NodeUnstageVolume", {"staging_target_path": ""}, INVALID,
                 "staging_target_path is required", id="unstage-no-staging-path"),
    pytest.param("NodeGetVolumeStats", {"volume_path": ""}, INVALID, "volume_path is required",
                 id="stats-no-path"),
    # csi-sanity's "should fail when volume is not found": a relative path.
    pytest.param("NodeGetVolumeStats", {"volume_path": "some/path"}, "NOT_FOUND",
                 "volume v1 is not published at volume_path 'some/path': this plugin publishes "
                 "volumes only at absolute paths", id="stats-relative-path"),
    pytest.param("NodeGetVolumeStats", {"volume_id": "", "volume_path": "some/path"}, INVALID,
                 "volume_id is required", id="stats-no-volume-id"),
    pytest.param("NodeGetVolumeStats", {}, "NOT_FOUND",
                 "volume_path {k}/plugins/vol/globalmount does not exist", id="stats-missing-path"),
    pytest.param("NodeExpandVolume", {}, "UNIMPLEMENTED",
                 "NodeExpandVolume is not implemented by this plugin", id="expand-unimplemented"),
]  # fmt: skip


def fill(value: Any, kubelet_dir: Path) -> Any:
    if isinstance(value, str):
        return value.format(k=kubelet_dir, parent=kubelet_dir.parent)
    if isinstance(value, dict):
        return {key: fill(item, kubelet_dir) for key, item in value.items()}
    return value


@pytest.mark.parametrize(("method", "change", "code", "message"), BAD_REQUESTS)
def test_bad_request_is_refused_with_an_exact_code_and_message(
    plugin: Plugin, method: str, change: dict[str, Any], code: str, message: str
) -> None:
    fields = {**base_request(method), **change}
    fields = {
        key: fill(value, plugin.kubelet_dir) for key, value in fields.items() if value is not None
    }
    request_type = getattr(csi_pb2, f"{method}Request")
    with pytest.raises(grpc.RpcError) as raised:
        getattr(plugin.node, method)(request_type(**fields), timeout=10)
    assert raised.value.code().name == code
    assert raised.value.details() == fill(message, plugin.kubelet_dir)


def test_refused_requests_leave_no_directories_or_mounts_behind(plugin: Plugin) -> None:
    assert not (plugin.kubelet_dir / "plugins" / "vol").exists()
    assert not (plugin.kubelet_dir / "pods").exists()


def test_node_info_and_capabilities_are_what_kubelet_needs(plugin: Plugin) -> None:
    info = plugin.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=10)
    capabilities = plugin.node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), timeout=10)
    assert info.node_id == "test-node"
    assert [cap.rpc.type for cap in capabilities.capabilities] == [
        Rpc.STAGE_UNSTAGE_VOLUME, Rpc.GET_VOLUME_STATS, Rpc.VOLUME_CONDITION,
        Rpc.SINGLE_NODE_MULTI_WRITER,
    ]  # fmt: skip


def test_identity_reports_driver_version_and_no_controller(plugin: Plugin) -> None:
    info = plugin.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
    capabilities = plugin.identity.GetPluginCapabilities(
        csi_pb2.GetPluginCapabilitiesRequest(), timeout=10
    )
    assert (info.name, info.vendor_version) == (DRIVER_NAME, __version__)
    assert list(capabilities.capabilities) == []


def test_probe_answers_ready_on_a_node_with_the_fuse_client(plugin: Plugin) -> None:
    probe = plugin.identity.Probe(csi_pb2.ProbeRequest(), timeout=10)
    assert probe.HasField("ready") and probe.ready.value is True


def test_socket_is_private_to_owner_and_group(plugin: Plugin) -> None:
    mode = os.stat(server.socket_path(plugin.endpoint)).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660


def test_sigterm_stops_the_plugin_cleanly_and_removes_its_socket(tmp_path: Path) -> None:
    running = start_plugin(tmp_path)
    assert stop_plugin(running) == 0
    assert not server.socket_path(running.endpoint).exists()
    assert '"event": "csi server stopped"' in running.log()


def test_a_socket_left_by_a_killed_plugin_is_replaced_on_restart(tmp_path: Path) -> None:
    first = start_plugin(tmp_path)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    first.channel.close()
    assert server.socket_path(first.endpoint).exists()
    second = start_plugin(tmp_path)
    try:
        info = second.identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=10)
        assert info.name == DRIVER_NAME
        assert '"event": "removed stale socket"' in second.log()
    finally:
        assert stop_plugin(second) == 0
