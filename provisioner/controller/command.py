"""`glusterfs-provisioner controller`: flags (env fallbacks) → ControllerConfig → run."""

import argparse
import os
import re
import signal
import sys
import threading
from types import FrameType
from typing import Final

from provisioner import errors
from provisioner.controller.controller import Controller, ControllerConfig, run_until_stopped
from provisioner.controller.leader import (
    DEFAULT_LEASE_DURATION,
    DEFAULT_RENEW_DEADLINE,
    DEFAULT_RETRY_PERIOD,
    LeaderElectionConfig,
)
from provisioner.flags import add_cluster_flags, env_default, parse_address
from provisioner.kube.client import api_client
from provisioner.log import get_logger

log = get_logger("controller-command")

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
#: Exit codes: 0 clean stop, 1 lost leadership or failure while running, 2 bad config.
EXIT_CONFIG: Final = 2
EXIT_RUNTIME: Final = 1
_TRUE: Final = {"1", "true", "yes", "on"}
_FALSE: Final = {"0", "false", "no", "off", ""}


#: Twice Heketi's default max_inflight_operations (8): a worker holds a Heketi slot
#: only while its operation runs and spends the rest of a claim on API writes, so with
#: as many workers as slots Heketi idles between operations (bench: 1.23x vs 1.12x ideal).
#: Heketi itself stays protected by the client's per-URL limit of 8 operations.
DEFAULT_WORKERS = 16


def parse_duration(text: str) -> float:
    """Go-style duration ("15s", "10m", "1h30m", "500ms") or plain seconds → seconds."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise errors.InvalidArgument(
                f"{text!r} is not a duration; use e.g. 15s, 10m, 1h30m or 500ms"
            ) from None
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise errors.InvalidArgument(f"duration {text!r} must be positive")
    return seconds


def parse_bool(text: str, *, flag: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise errors.InvalidArgument(f"{flag} must be true or false, got {text!r}")


def lease_name(driver: str) -> str:
    """Lease object name for a driver: the driver name as a DNS label."""
    return re.sub(r"[^a-z0-9-]", "-", driver.lower()).strip("-")[:63]


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "controller",
        help="provision, delete and expand GlusterFS volumes for PVCs",
        description="Watch PVCs, PVs and StorageClasses; provision volumes through Heketi.",
    )
    add_cluster_flags(parser, driver_role="provisioner/CSI driver name")
    parser.add_argument(
        "--workers",
        default=env_default("WORKERS", str(DEFAULT_WORKERS)),
        help=f"claims/volumes reconciled in parallel (env WORKERS; default {DEFAULT_WORKERS})",
    )
    _add_election_flags(parser)
    _add_serving_flags(parser)
    parser.set_defaults(run=run)


def _add_serving_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--metrics-address",
        default=env_default("METRICS_ADDRESS", ":8080"),
        help="serve /metrics, /healthz, /readyz here (env METRICS_ADDRESS; default :8080; "
        "empty disables)",
    )
    add(
        "--resync",
        default=env_default("RESYNC", "10m"),
        help="re-examine every cached object this often (env RESYNC; default 10m)",
    )
    add(
        "--cache-sync-timeout",
        default=env_default("CACHE_SYNC_TIMEOUT", "60s"),
        help="exit non-zero when PVCs, PVs and StorageClasses cannot be listed within this "
        "time (env CACHE_SYNC_TIMEOUT; default 60s)",
    )


def _add_election_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--leader-elect",
        nargs="?",
        const="true",
        default=env_default("LEADER_ELECT", "false"),
        help="elect a leader through a Lease; run it with 2+ replicas (env LEADER_ELECT)",
    )
    add(
        "--leader-election-namespace",
        default=env_default("POD_NAMESPACE"),
        help="namespace of the Lease (env POD_NAMESPACE)",
    )
    add(
        "--leader-election-lease-duration",
        default=env_default("LEADER_ELECTION_LEASE_DURATION", f"{DEFAULT_LEASE_DURATION:g}s"),
        help="how long a leader's lease is valid without renewal "
        "(env LEADER_ELECTION_LEASE_DURATION; default 15s)",
    )
    add(
        "--leader-election-renew-deadline",
        default=env_default("LEADER_ELECTION_RENEW_DEADLINE", f"{DEFAULT_RENEW_DEADLINE:g}s"),
        help="a leader stops acting when it could not renew for this long "
        "(env LEADER_ELECTION_RENEW_DEADLINE; default 10s)",
    )
    add(
        "--leader-election-retry-period",
        default=env_default("LEADER_ELECTION_RETRY_PERIOD", f"{DEFAULT_RETRY_PERIOD:g}s"),
        help="interval of lease renewals and acquisition attempts "
        "(env LEADER_ELECTION_RETRY_PERIOD; default 2s)",
    )


def build_config(args: argparse.Namespace) -> ControllerConfig:
    """Validate the flags; raises InvalidArgument with a message naming the flag."""
    try:
        workers = int(args.workers)
    except ValueError:
        raise errors.InvalidArgument(f"--workers must be a number, got {args.workers!r}") from None
    election = None
    if parse_bool(str(args.leader_elect), flag="--leader-elect"):
        election = _election_config(args)
    return ControllerConfig(
        driver_name=args.driver_name,
        workers=workers,
        resync_seconds=parse_duration(args.resync),
        leader_election=election,
        metrics_address=parse_address(args.metrics_address),
        sync_timeout_seconds=parse_duration(args.cache_sync_timeout),
    )


def _election_config(args: argparse.Namespace) -> LeaderElectionConfig:
    namespace = args.leader_election_namespace or _own_namespace()
    if not namespace:
        raise errors.InvalidArgument(
            "--leader-election-namespace (or env POD_NAMESPACE) is required with --leader-elect"
        )
    try:
        return LeaderElectionConfig(
            namespace=namespace,
            name=lease_name(args.driver_name),
            identity="",
            lease_duration=parse_duration(args.leader_election_lease_duration),
            renew_deadline=parse_duration(args.leader_election_renew_deadline),
            retry_period=parse_duration(args.leader_election_retry_period),
        )
    except ValueError as exc:
        raise errors.InvalidArgument(str(exc)) from exc


def _own_namespace() -> str | None:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    return None


def run(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
        client = api_client(args.kubeconfig)
    except errors.InvalidArgument as exc:
        print(f"glusterfs-provisioner controller: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stop = threading.Event()
    _on_signals(stop)
    controller = Controller(client, config)
    try:
        controller.start()
        clean = run_until_stopped(controller, stop)
    except errors.InvalidArgument as exc:
        controller.stop()
        print(f"glusterfs-provisioner controller: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except errors.ProvisionerError as exc:
        log.error("controller failed", error=str(exc))
        controller.stop()
        return EXIT_RUNTIME
    controller.stop(release=clean)
    if not clean:
        log.error("lost leadership; exiting so a fresh instance can campaign again")
        return EXIT_RUNTIME
    return 0


def _on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("signal received; draining", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
