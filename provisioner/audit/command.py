"""`glusterfs-provisioner audit`: flags, credentials, exit codes."""

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from provisioner import errors
from provisioner.audit.findings import AuditSettings
from provisioner.audit.ledger import DEFAULT_STATE_CONFIGMAP, KubeReader
from provisioner.audit.output import write_report
from provisioner.audit.run import MIN_OLDER_THAN_SECONDS, DeletePolicy, run_audit
from provisioner.core.storageclass import parse_rest_url
from provisioner.core.volumes import VolumeService
from provisioner.flags import KEY_ENV, add_cluster_flags, env_default, read_heketi_key
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.registry import HeketiClients
from provisioner.kube.api import KubeApi
from provisioner.kube.client import api_client as kube_api_client

#: Default --pending-after: a healthy claim binds within seconds; five minutes is "stuck".
DEFAULT_PENDING_AFTER: Final = "5m"
#: Exit codes (documented in docs/operations.md, "Orphan audit").
EXIT_CLEAN: Final = 0
EXIT_FINDINGS: Final = 1
EXIT_USAGE: Final = 2
EXIT_BACKEND: Final = 3
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

DESCRIPTION: Final = """\
Report what provisioning left behind, comparing one Heketi server with the cluster:
orphaned Heketi volumes (our naming, no PV, no claim), PVs of this driver whose Heketi
volume is gone, claims pending longer than --pending-after (with their latest Event), and
GIDs held by more than one volume. Read-only unless --delete-orphans is given.

Heketi records no creation time, so --delete-orphans --older-than D deletes a volume only
after delete runs of this command saw it orphaned at least D ago (sightings are kept in
the ConfigMap glusterfs-provisioner-audit in --state-namespace) and it is still
unreferenced when re-checked just before deletion. Exit codes: 0 nothing found,
1 findings, 2 bad usage, 3 Heketi or the Kubernetes API failed.
"""


def parse_duration(text: str) -> float:
    """``90s``, ``10m``, ``24h``, ``7d``, ``1h30m`` → seconds (InvalidArgument otherwise)."""
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise errors.InvalidArgument(
            f"invalid duration {text!r}: use a number with a unit, e.g. 90s, 10m, 24h, 7d, 1h30m"
        )
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


@dataclass(frozen=True)
class AuditCommandConfig:
    """Validated flags of `glusterfs-provisioner audit` (no secret values in here)."""

    kubeconfig: str | None
    driver_name: str
    heketi_url: str
    heketi_user: str
    heketi_auth: bool
    heketi_key_file: str | None
    heketi_secret: tuple[str, str] | None
    heketi_ca_file: str | None
    pending_after_seconds: float
    prefixes: tuple[str, ...]
    output: str
    delete: DeletePolicy | None
    state_namespace: str


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="report orphaned Heketi volumes, PVs without volumes, stuck claims, GID collisions",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_cluster_flags(parser, driver_role="CSI driver name of our PVs")
    _add_heketi_flags(parser)
    _add_report_flags(parser)
    parser.set_defaults(run=run)


def _add_heketi_flags(p: argparse.ArgumentParser) -> None:
    """Where Heketi is and how to authenticate; the key itself never comes from a flag."""
    p.add_argument(
        "--heketi-url",
        default=env_default("HEKETI_URL"),
        help="Heketi REST URL, http(s)://host:port (env HEKETI_URL; required)",
    )
    p.add_argument(
        "--heketi-user",
        default=env_default("HEKETI_USER", "admin"),
        help="Heketi user (env HEKETI_USER; default admin)",
    )
    p.add_argument(
        "--heketi-secret",
        default=env_default("HEKETI_SECRET"),
        metavar="NAMESPACE/NAME",
        help="Secret holding the Heketi key under data.key (env HEKETI_SECRET)",
    )
    p.add_argument(
        "--heketi-key-file",
        default=env_default("HEKETI_KEY_FILE"),
        metavar="PATH",
        help="file holding the Heketi key (env HEKETI_KEY_FILE); "
        "or put the key itself in env HEKETI_KEY",
    )
    p.add_argument(
        "--no-heketi-auth",
        action="store_true",
        help="Heketi runs without authentication: send no Authorization header",
    )
    p.add_argument(
        "--heketi-ca-file",
        default=env_default("HEKETI_CA_FILE"),
        metavar="PATH",
        help="PEM CA bundle to verify an https Heketi (env HEKETI_CA_FILE; "
        "default: the system trust store)",
    )


def _add_report_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--volume-name-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="also treat <PREFIX>_<ns>_<claim>_<uid> volumes as ours (repeatable; "
        "prefixes of our StorageClasses are found automatically)",
    )
    p.add_argument(
        "--pending-after",
        default=DEFAULT_PENDING_AFTER,
        metavar="DURATION",
        help=f"report claims pending at least this long (default {DEFAULT_PENDING_AFTER})",
    )
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument(
        "--delete-orphans",
        action="store_true",
        help="delete orphaned Heketi volumes orphaned for --older-than (prints them first)",
    )
    p.add_argument(
        "--older-than",
        metavar="DURATION",
        help="with --delete-orphans: how long a volume must have been seen orphaned "
        f"(at least {int(MIN_OLDER_THAN_SECONDS // 60)}m), e.g. 24h",
    )
    p.add_argument(
        "--state-namespace",
        default=env_default("POD_NAMESPACE", "kube-system"),
        help="namespace of the ConfigMap recording orphan sightings "
        f"({DEFAULT_STATE_CONFIGMAP}; env POD_NAMESPACE; default kube-system)",
    )


def config_from_args(args: argparse.Namespace) -> AuditCommandConfig:
    """Flags → config; InvalidArgument with an exact message on bad usage."""
    if not args.heketi_url:
        raise errors.InvalidArgument("--heketi-url (or env HEKETI_URL) is required")
    url = parse_rest_url(args.heketi_url, source="--heketi-url")
    secret = None
    if args.heketi_secret:
        ns, _, name = args.heketi_secret.partition("/")
        if not ns or not name or "/" in name:
            raise errors.InvalidArgument("--heketi-secret must be NAMESPACE/NAME")
        secret = (ns, name)
    if secret and args.heketi_key_file:
        raise errors.InvalidArgument("give either --heketi-secret or --heketi-key-file, not both")
    return AuditCommandConfig(
        kubeconfig=args.kubeconfig,
        driver_name=args.driver_name,
        heketi_url=url,
        heketi_user=args.heketi_user,
        heketi_auth=not args.no_heketi_auth,
        heketi_key_file=args.heketi_key_file,
        heketi_secret=secret,
        heketi_ca_file=args.heketi_ca_file,
        pending_after_seconds=parse_duration(args.pending_after),
        prefixes=tuple(args.volume_name_prefix),
        output=args.output,
        delete=_delete_policy(args),
        state_namespace=args.state_namespace,
    )


def _delete_policy(args: argparse.Namespace) -> DeletePolicy | None:
    if not args.delete_orphans:
        if args.older_than:
            raise errors.InvalidArgument("--older-than only applies with --delete-orphans")
        return None
    if not args.older_than:
        raise errors.InvalidArgument(
            "--delete-orphans needs --older-than DURATION (e.g. 24h): Heketi records no "
            "creation time, so a volume is deleted only after audits saw it orphaned that long"
        )
    seconds = parse_duration(args.older_than)
    if seconds < MIN_OLDER_THAN_SECONDS:
        raise errors.InvalidArgument(
            f"--older-than {args.older_than} is too short: use at least "
            f"{int(MIN_OLDER_THAN_SECONDS // 60)}m so volumes being provisioned right now "
            "are never deleted"
        )
    return DeletePolicy(older_than_seconds=seconds, ledger_namespace=args.state_namespace)


def heketi_key(
    config: AuditCommandConfig, kube: KubeReader, environ: Mapping[str, str]
) -> str | None:
    """The Heketi key from the Secret, the key file or env HEKETI_KEY (never a flag);
    the file and the environment are read as every command reads them."""
    if not config.heketi_auth:
        return None
    if config.heketi_secret:
        return kube.secret_key(*config.heketi_secret)
    path = Path(config.heketi_key_file) if config.heketi_key_file else None
    return read_heketi_key(path, environ.get(KEY_ENV))


def execute(
    config: AuditCommandConfig,
    *,
    api_client: Any,
    environ: Mapping[str, str],
    out: TextIO,
    now: Callable[[], float] = time.time,
    heketi_clients: HeketiClients | None = None,
) -> int:
    """Run the audit with an ApiClient; returns the exit code. `heketi_clients`: the
    caller's (it closes them); by default the run makes its own and closes them."""
    kube = KubeReader(KubeApi(api_client))
    heketi_config = HeketiConfig(
        url=config.heketi_url,
        user=config.heketi_user,
        key=heketi_key(config, kube, environ),
        auth_enabled=config.heketi_auth,
        ca_bundle=config.heketi_ca_file,
    )
    clients = heketi_clients if heketi_clients is not None else HeketiClients()
    try:
        report = run_audit(
            volumes=VolumeService(clients=clients),
            heketi=heketi_config,
            kube=kube,
            settings=_settings(config),
            delete=config.delete,
            ledger_namespace=config.state_namespace,
            now=now,
            out=out,
        )
    finally:
        if heketi_clients is None:
            clients.close()
    write_report(report, out, output=config.output)
    return EXIT_FINDINGS if report.has_findings else EXIT_CLEAN


def _settings(config: AuditCommandConfig) -> AuditSettings:
    return AuditSettings(
        driver_name=config.driver_name,
        heketi_url=config.heketi_url,
        pending_after_seconds=config.pending_after_seconds,
        extra_prefixes=config.prefixes,
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of `glusterfs-provisioner audit`."""
    try:
        config = config_from_args(args)
    except errors.InvalidArgument as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        api_client = kube_api_client(config.kubeconfig)
        return execute(config, api_client=api_client, environ=os.environ, out=sys.stdout)
    except errors.InvalidArgument as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except errors.ProvisionerError as exc:
        print(f"audit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BACKEND
