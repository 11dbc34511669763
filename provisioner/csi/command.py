"""`glusterfs-provisioner node`: the CSI node plugin (Identity + Node services).

Flags fall back to environment variables so a DaemonSet can set either.
"""

import argparse
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner import errors, log
from provisioner.csi import (
    controller_command,
    csi_pb2_grpc,
    fuse_cgroups,
    gluster_tls,
    node_events,
    recovery,
    server,
)
from provisioner.csi.identity import IdentityService, validate_driver_name
from provisioner.csi.mounter import Runner, SubprocessRunner, SystemMounter
from provisioner.csi.node import (
    DEFAULT_KUBELET_DIR,
    DEFAULT_MOUNT_LOG_DIR,
    NodeConfig,
    NodeService,
    fuse_client_missing,
)
from provisioner.csi.node_signals import NodeMounts
from provisioner.flags import env_default, parse_address
from provisioner.heketi.registry import HeketiClients
from provisioner.metrics import (
    CsiMetrics,
    MetricsServer,
    export_build_info,
    glusterfs_client_version,
)
from provisioner.names import DRIVER_NAME

_log = log.get_logger("csi.command")

#: Where the node-driver-registrar and kubelet expect the socket in our DaemonSet.
DEFAULT_ENDPOINT = "unix:///csi/csi.sock"
#: Reason of the Node Event when FUSE clients cannot outlive the plugin.
FUSE_CGROUPS_UNAVAILABLE = "FuseClientsNotIsolated"


@dataclass(frozen=True)
class NodeCommandConfig:
    """Everything the `node` command needs, validated."""

    endpoint: str
    driver_name: str
    node: NodeConfig
    shutdown_grace: float
    controller: controller_command.ControllerServiceConfig | None = None
    state_dir: Path | None = None
    fuse_cgroup: Path | None = None
    fuse_cgroup_namespace: Path | None = None
    #: Directory of the FUSE clients' TLS certificate, key and CA; None = glusterfs's own.
    gluster_tls_dir: gluster_tls.TlsDir | None = None
    #: kubeconfig for the Node Event of a degraded start (None: the in-cluster account).
    kubeconfig: str | None = None
    #: (host, port) of /metrics, /healthz, /readyz; None = not served.
    metrics_address: tuple[str, int] | None = None


def register(subparsers: Any) -> None:
    """Add the `node` sub-command."""
    parser = subparsers.add_parser(
        "node",
        help="run the CSI node plugin (Identity + Node services) on a unix socket",
        description=(
            "Serve the CSI Identity and Node services on a unix socket for kubelet: "
            "NodeStageVolume mounts a GlusterFS volume once per node (mount -t glusterfs), "
            "NodePublishVolume bind-mounts it into pods. Needs root and mount.glusterfs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The node plugin's flags (each with an environment fallback)."""
    _add_serving_flags(parser)
    _add_mount_flags(parser)
    _add_api_flags(parser)
    controller_command.add_arguments(parser)


def _add_serving_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        default=env_default("CSI_ENDPOINT", DEFAULT_ENDPOINT),
        help="gRPC endpoint, unix:///absolute/path (env CSI_ENDPOINT)",
    )
    parser.add_argument(
        "--node-id",
        default=env_default("NODE_ID"),
        help="this node's name as kubelet knows it, e.g. spec.nodeName; required (env NODE_ID)",
    )
    parser.add_argument(
        "--kubelet-dir",
        type=Path,
        default=env_default("KUBELET_DIR", str(DEFAULT_KUBELET_DIR)),
        help="kubelet root; staging and target paths must be inside it (env KUBELET_DIR)",
    )
    parser.add_argument(
        "--driver-name",
        default=env_default("DRIVER_NAME", DRIVER_NAME),
        help="CSI driver name reported by GetPluginInfo; must match the CSIDriver object "
        "and StorageClass provisioner (env DRIVER_NAME)",
    )
    parser.add_argument(
        "--shutdown-grace", type=float,
        default=env_default("SHUTDOWN_GRACE", str(server.DEFAULT_SHUTDOWN_GRACE)),
        help="seconds SIGTERM waits for in-flight calls before exiting (env SHUTDOWN_GRACE)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-address",
        default=env_default("METRICS_ADDRESS", ""),
        help="serve /metrics (CSI calls per RPC, Heketi requests per route), /healthz and "
        "/readyz here, e.g. :9808 (env METRICS_ADDRESS; default: not served)",
    )


def _add_mount_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mount-log-dir",
        type=Path,
        default=env_default("MOUNT_LOG_DIR", str(DEFAULT_MOUNT_LOG_DIR)),
        help="directory for per-volume GlusterFS client logs, <volume>.log (env MOUNT_LOG_DIR)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=env_default("STATE_DIR"),
        help="host directory for stage records used to repair mounts after a restart "
        "(env STATE_DIR; default <kubelet-dir>/plugins/<driver-name>/staged)",
    )
    parser.add_argument(
        "--fuse-cgroup",
        type=Path,
        default=env_default("FUSE_CGROUP"),
        help="cgroup to start GlusterFS FUSE clients in, outside the plugin container, so "
        "they survive its restart; its parent is the host's cgroup root: on cgroup v2 this "
        "directory, on cgroup v1 a cgroup of this name in every hierarchy mounted under the "
        "parent; needs hostPID (env FUSE_CGROUP)",
    )
    parser.add_argument(
        "--fuse-cgroup-namespace",
        type=Path,
        default=env_default("FUSE_CGROUP_NAMESPACE"),
        help="cgroup namespace to enter before joining --fuse-cgroup, e.g. /proc/1/ns/cgroup "
        "with hostPID (env FUSE_CGROUP_NAMESPACE)",
    )
    parser.add_argument(
        "--gluster-tls-dir",
        type=Path,
        default=env_default("GLUSTER_TLS_DIR"),
        help="directory with the GlusterFS client's glusterfs.pem, glusterfs.key and "
        "glusterfs.ca, used by every FUSE mount (volumes with client.ssl on); volumes "
        "without TLS ignore them (env GLUSTER_TLS_DIR; default: glusterfs's built-in path)",
    )


def _add_api_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        default=env_default("KUBECONFIG"),
        help="kubeconfig for the one Warning Event the plugin may write on its Node "
        "(env KUBECONFIG; default: the in-cluster service account)",
    )


def config_from_args(args: argparse.Namespace) -> NodeCommandConfig:
    """Validated configuration from parsed flags (InvalidArgument on a bad value)."""
    server.socket_path(args.endpoint)
    if args.shutdown_grace < 0:
        raise errors.InvalidArgument("--shutdown-grace must not be negative")
    return NodeCommandConfig(
        endpoint=args.endpoint,
        driver_name=validate_driver_name(args.driver_name),
        node=NodeConfig(
            node_id=args.node_id or "",
            kubelet_dir=args.kubelet_dir,
            mount_log_dir=args.mount_log_dir,
        ),
        shutdown_grace=args.shutdown_grace,
        controller=controller_command.config_from_args(args),
        state_dir=args.state_dir or args.kubelet_dir / "plugins" / args.driver_name / "staged",
        fuse_cgroup=fuse_cgroups.check_path(args.fuse_cgroup) if args.fuse_cgroup else None,
        fuse_cgroup_namespace=args.fuse_cgroup_namespace,
        gluster_tls_dir=gluster_tls.TlsDir(args.gluster_tls_dir) if args.gluster_tls_dir else None,
        kubeconfig=args.kubeconfig or None,
        metrics_address=parse_address(args.metrics_address or ""),
    )


@dataclass(frozen=True)
class Services:
    """The servicers one process serves; `controller` is None for a node-only plugin."""

    identity: IdentityService
    node: NodeService
    controller: csi_pb2_grpc.ControllerServicer | None = None
    mounter: SystemMounter | None = None
    records: recovery.StageRecords | None = None
    locks: server.VolumeLocks | None = None
    #: Counts every CSI call and (through `heketi`) every Heketi request.
    metrics: CsiMetrics = field(default_factory=CsiMetrics)
    #: The Heketi clients of the Controller service (closed when the plugin stops).
    heketi: HeketiClients = field(default_factory=HeketiClients)

    def ready(self) -> bool:
        """What Probe reports: every readiness check passes."""
        return self.identity.ready()


def build_services(config: NodeCommandConfig) -> Services:
    """Identity + Node over the real mounter, sharing one set of per-volume locks."""
    locks = server.VolumeLocks()
    metrics = CsiMetrics()
    heketi = HeketiClients(observer=metrics.heketi)
    controller = controller_command.build(config.controller, locks=locks, heketi=heketi)
    identity = IdentityService(
        driver_name=config.driver_name,
        controller_service=controller is not None,
        readiness_checks=[fuse_client_missing],
    )
    mounter = SystemMounter(
        runner=fuse_runner(config, SubprocessRunner()), tls=config.gluster_tls_dir
    )
    records = recovery.StageRecords(config.state_dir) if config.state_dir else None
    node = NodeService(config=config.node, mounter=mounter, locks=locks, records=records)
    return Services(
        identity=identity, node=node, controller=controller, mounter=mounter, records=records,
        locks=locks, metrics=metrics, heketi=heketi,
    )  # fmt: skip


def fuse_runner(config: NodeCommandConfig, runner: Runner) -> Runner:
    """`runner`, starting gluster mounts in the FUSE cgroups of this node's cgroup mode.

    When they cannot be used the plugin still serves (mounts are repaired at the next
    start instead of surviving it) and says so once: an error log and a Node Event.
    """
    if config.fuse_cgroup is None:
        return runner
    try:
        escape = fuse_cgroups.escape_runner(
            runner, cgroups=fuse_cgroups.prepare(config.fuse_cgroup),
            cgroup_namespace=config.fuse_cgroup_namespace,
        )  # fmt: skip
    except fuse_cgroups.FuseCgroupsUnavailable as error:
        _warn_fuse_cgroups_unavailable(config, str(error))
        return runner
    _log.info(
        "FUSE clients start outside the plugin's cgroups", cgroup_mode=escape.cgroups.mode,
        cgroups=[str(d) for d in escape.cgroups.directories],
        cgroup_namespace=str(escape.cgroup_namespace or "the plugin's own"),
    )  # fmt: skip
    return escape


def _warn_fuse_cgroups_unavailable(config: NodeCommandConfig, reason: str) -> None:
    message = (
        f"GlusterFS FUSE clients cannot be started outside the node plugin's cgroups "
        f"(--fuse-cgroup {config.fuse_cgroup}: {reason}): a restart or upgrade of the node "
        "plugin stops them, and pods using Gluster volumes on this node lose their mounts "
        "until they are recreated"
    )
    _log.error(message, node_id=config.node.node_id)
    node_events.warn_in_background(
        config.node.node_id, reason=FUSE_CGROUPS_UNAVAILABLE, message=message,
        kubeconfig=config.kubeconfig,
    )  # fmt: skip


def _start_mount_repair(services: Services) -> None:
    """Repair mounts whose FUSE client died while the plugin was down, in the background
    (a remount can take up to the mount timeout; kubelet must reach the socket meanwhile).
    """
    mounter, records = services.mounter, services.records
    if mounter is None or records is None:
        return

    def repair() -> None:
        try:
            recovery.repair_stale_mounts(mounter=mounter, records=records, locks=services.locks)
        except Exception as error:  # a bug must not pass silently in a thread
            _log.error("start-up mount repair failed", exc_info=error)

    threading.Thread(target=repair, name="mount-repair", daemon=True).start()


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; 2 on invalid configuration, 1 if serving fails."""
    try:
        config = config_from_args(args)
    except errors.InvalidArgument as error:
        print(f"glusterfs-provisioner node: {error}", file=sys.stderr)
        return 2
    services = build_services(config)
    try:
        metrics_server = _start_metrics(config, services)
        grpc_server = server.serve(
            config.endpoint,
            identity=services.identity,
            node=services.node,
            controller=services.controller,
            metrics=services.metrics,
        )
    except errors.InvalidArgument as error:
        print(f"glusterfs-provisioner node: {error}", file=sys.stderr)
        return 2
    except errors.ProvisionerError as error:
        _log.error("cannot start the node plugin", error=str(error))
        return 1
    _log.info("node plugin started", node_id=config.node.node_id, driver=config.driver_name)
    _start_mount_repair(services)
    server.run_until_signalled(grpc_server, endpoint=config.endpoint, grace=config.shutdown_grace)
    services.heketi.close()
    if metrics_server is not None:
        metrics_server.stop()
    return 0


def _start_metrics(config: NodeCommandConfig, services: Services) -> MetricsServer | None:
    if config.metrics_address is None:
        return None
    registry = services.metrics.registry
    if services.mounter is not None:
        registry.register(
            NodeMounts(table=services.mounter.table, kubelet_dir=config.node.kubelet_dir)
        )
    export_build_info(registry, glusterfs=glusterfs_client_version())
    metrics_server = MetricsServer(
        config.metrics_address,
        registry=registry,
        ready=services.ready,
        healthy=lambda: server.answers_probe(config.endpoint),
    )
    metrics_server.start()
    return metrics_server
