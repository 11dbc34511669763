"""`glusterfs-provisioner migrate`: flags, credentials, exit codes."""

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO

from provisioner import errors
from provisioner.audit.command import parse_duration
from provisioner.flags import add_cluster_flags, add_log_flags
from provisioner.kube.api import KubeApi
from provisioner.kube.client import api_client as kube_api_client
from provisioner.kube.secrets import SecretKeys
from provisioner.migrate import apply as applying
from provisioner.migrate.classes import (
    ensure_twin,
    is_in_tree_class,
    replace_class,
    stranded_twins,
)
from provisioner.migrate.cluster import Cluster, class_path
from provisioner.migrate.converge import DEFAULT_WAIT_SECONDS, Checkpoint, Say
from provisioner.migrate.heketi_check import HeketiCheck
from provisioner.migrate.output import write_plan
from provisioner.migrate.plan import Plan, Settings, build_plan
from provisioner.migrate.prune import prune
from provisioner.migrate.rollback import rollback

EXIT_OK: Final = 0
EXIT_NOT_DONE: Final = 1
EXIT_USAGE: Final = 2
EXIT_BACKEND: Final = 3

DESCRIPTION: Final = """\
Bring PersistentVolumes of the in-tree GlusterFS plugin (kubernetes.io/glusterfs, removed
in Kubernetes 1.26) across to this CSI driver: same PV name, claim still bound with the
same UID, data untouched. `plan` (the default) changes nothing; `apply` migrates; an
interrupted apply is finished by running it again. See docs/migration.md.
Exit codes: 0 done (plan: nothing blocked), 1 blocked or not finished, 2 bad usage,
3 the Kubernetes API failed.
"""


@dataclass(frozen=True)
class MigrateConfig:
    kubeconfig: str | None
    driver_name: str
    action: str
    output: str
    pvs: tuple[str, ...] | None
    dry_run: bool
    heketi_check: bool
    wait_seconds: float
    prune_dynamic: bool
    prune_named: tuple[tuple[str, str], ...]
    replace: bool
    tls_ready: bool = False


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="bring in-tree GlusterFS PVs across to CSI PVs (plan, apply, rollback, classes)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    plan = actions.add_parser("plan", help="show what apply would do, and what blocks it")
    plan.add_argument("-o", "--output", choices=["table", "json"], default="table")
    _heketi_flag(plan)
    _apply_parser(actions)
    back = actions.add_parser("rollback", help="restore the recorded in-tree PV")
    back.add_argument("--pv", required=True, metavar="NAME")
    back.add_argument("--dry-run", action="store_true", help="print the steps, write nothing")
    classes = actions.add_parser("classes", help="CSI twins of in-tree StorageClasses")
    classes.add_argument(
        "--replace",
        action="store_true",
        help="re-create each in-tree class under its own name with our "
        "provisioner (default-class annotation kept)",
    )
    classes.add_argument("--dry-run", action="store_true", help="print, write nothing")
    for action in actions.choices.values():
        _common(action, repeated=True)
    parser.set_defaults(run=run)


def _common(p: argparse.ArgumentParser, *, repeated: bool = False) -> None:
    """The flags every action takes, before or after the action's name."""
    add_cluster_flags(p, driver_role="CSI driver name", repeated=repeated)
    if repeated:
        add_log_flags(p, repeated=True)
    p.add_argument(
        "--wait",
        default=argparse.SUPPRESS if repeated else f"{int(DEFAULT_WAIT_SECONDS)}s",
        metavar="DURATION",
        help="how long to wait for a PV to go or a claim to bind again "
        f"(default {int(DEFAULT_WAIT_SECONDS)}s)",
    )


def _heketi_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-heketi-check",
        action="store_true",
        help="do not ask Heketi to confirm the volume ids of Heketi PVs",
    )
    p.add_argument(
        "--gluster-tls-ready",
        action="store_true",
        help="the node plugin has the Gluster client's TLS certificate, key and CA "
        "(deploy/components/gluster-tls): migrate PVs whose volume uses "
        "TLS",
    )


def _apply_parser(actions: Any) -> None:
    p = actions.add_parser("apply", help="migrate PVs (crash-safe; rerun to finish)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every in-tree GlusterFS PV")
    which.add_argument("--pv", nargs="+", metavar="NAME", help="these PVs")
    p.add_argument("--dry-run", action="store_true", help="print the steps, write nothing")
    p.add_argument(
        "--prune-endpoints",
        action="store_true",
        help="afterwards delete glusterfs-dynamic-* Endpoints/Services no in-tree PV uses",
    )
    p.add_argument(
        "--prune",
        action="append",
        default=[],
        metavar="NS/NAME",
        help="also delete this hand-made Endpoints/Service when unused (repeatable)",
    )
    _heketi_flag(p)


def _namespaced(text: str) -> tuple[str, str]:
    namespace, _, name = text.partition("/")
    if not namespace or not name or "/" in name:
        raise errors.InvalidArgument(f"--prune {text!r} must be NAMESPACE/NAME")
    return namespace, name


def config_from_args(args: argparse.Namespace) -> MigrateConfig:
    action = args.action or "plan"
    pvs = getattr(args, "pv", None)
    return MigrateConfig(
        kubeconfig=args.kubeconfig,
        driver_name=args.driver_name,
        action=action,
        output=getattr(args, "output", "table"),
        pvs=(pvs,) if isinstance(pvs, str) else tuple(pvs) if pvs else None,
        dry_run=bool(getattr(args, "dry_run", False)),
        heketi_check=not getattr(args, "no_heketi_check", False),
        wait_seconds=parse_duration(args.wait),
        prune_dynamic=bool(getattr(args, "prune_endpoints", False)),
        prune_named=tuple(_namespaced(t) for t in getattr(args, "prune", [])),
        replace=bool(getattr(args, "replace", False)),
        tls_ready=bool(getattr(args, "gluster_tls_ready", False)),
    )


def _say(out: TextIO) -> Say:
    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    return say


def make_plan(cluster: Cluster, config: MigrateConfig) -> Plan:
    check = HeketiCheck(SecretKeys(cluster.api)) if config.heketi_check else None
    try:
        settings = Settings(
            config.driver_name,
            check.problems if check else None,
            tls_ready=config.tls_ready,
            heketi_options=check.options if check else None,
        )
        return build_plan(cluster.snapshot(), settings)
    finally:
        if check is not None:
            check.close()


def execute(
    config: MigrateConfig,
    *,
    api_client: Any,
    out: TextIO,
    checkpoint: Checkpoint | None = None,
) -> int:
    """Run one migrate action; returns the exit code."""
    cluster = Cluster(KubeApi(api_client))
    if config.action == "plan":
        plan = make_plan(cluster, config)
        write_plan(plan, out, output=config.output)
        return EXIT_NOT_DONE if plan.blocked else EXIT_OK
    if config.action == "apply":
        return _apply(cluster, config, out, checkpoint)
    if config.action == "rollback":
        return _rollback(cluster, config, out, checkpoint)
    return _classes(cluster, config, out)


def _apply(
    cluster: Cluster, config: MigrateConfig, out: TextIO, checkpoint: Checkpoint | None
) -> int:
    plan = make_plan(cluster, config)
    rows, outcomes = applying.select(plan, config.pvs)
    settings = applying.ApplySettings(config.driver_name, config.dry_run, config.wait_seconds)
    extra = {"checkpoint": checkpoint} if checkpoint else {}
    outcomes += applying.apply(cluster, rows, settings, say=_say(out), **extra)
    if config.prune_dynamic or config.prune_named:
        done = frozenset(o.pv for o in outcomes if o.ok)
        prune(
            cluster,
            dynamic=config.prune_dynamic,
            named=config.prune_named,
            dry_run=config.dry_run,
            say=_say(out),
            migrated=done,
        )
    _report(out, outcomes)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_NOT_DONE


def _rollback(
    cluster: Cluster, config: MigrateConfig, out: TextIO, checkpoint: Checkpoint | None
) -> int:
    extra = {"checkpoint": checkpoint} if checkpoint else {}
    outcomes = [
        rollback(
            cluster,
            pv,
            driver=config.driver_name,
            wait_seconds=config.wait_seconds,
            dry_run=config.dry_run,
            say=_say(out),
            **extra,
        )
        for pv in config.pvs or ()
    ]
    _report(out, outcomes)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_NOT_DONE


def _classes(cluster: Cluster, config: MigrateConfig, out: TextIO) -> int:
    say = _say(out)
    all_classes = list(cluster.list(class_path()))
    in_tree = [sc for sc in all_classes if is_in_tree_class(sc)]
    stranded = stranded_twins(all_classes) if config.replace else []
    if not in_tree and not stranded:
        say("No in-tree GlusterFS StorageClasses.")
    for sc in in_tree:
        if config.replace:
            replace_class(
                cluster,
                str(sc["metadata"]["name"]),
                driver=config.driver_name,
                dry_run=config.dry_run,
                say=say,
            )
        else:
            ensure_twin(cluster, sc, driver=config.driver_name, dry_run=config.dry_run, say=say)
    for name in stranded:  # a --replace stopped after the delete: finish it
        replace_class(cluster, name, driver=config.driver_name, dry_run=config.dry_run, say=say)
    return EXIT_OK


def _report(out: TextIO, outcomes: Sequence[applying.Outcome]) -> None:
    for outcome in outcomes:
        out.write(f"{outcome.pv}: {'OK' if outcome.ok else 'NOT DONE'}: {outcome.message}\n")
    done = sum(o.ok for o in outcomes)
    out.write(f"{done} of {len(outcomes)} PVs done\n")


def run(args: argparse.Namespace) -> int:
    """Entry point of `glusterfs-provisioner migrate`."""
    try:
        config = config_from_args(args)
        api_client = kube_api_client(config.kubeconfig)
        return execute(config, api_client=api_client, out=sys.stdout)
    except errors.InvalidArgument as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except errors.ProvisionerError as exc:
        print(f"migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BACKEND
