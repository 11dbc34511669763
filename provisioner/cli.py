"""`glusterfs-provisioner <command>`: flags (with environment fallbacks) → config → run().

Each command lives in its own module exposing `register(subparsers)`, which adds
a sub-parser and sets `run=<callable(args) -> int>` as its default.
"""

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from provisioner import __version__, log

#: Modules that provide a command, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "provisioner.csi.command",
    "provisioner.controller.command",
    "provisioner.audit",
    "provisioner.migrate",
)


def env_default(var: str, default: str | None = None) -> str | None:
    """The value of environment variable `var`, else `default` (flag fallback)."""
    return os.environ.get(var, default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glusterfs-provisioner",
        description="Dynamic GlusterFS volumes for Kubernetes through Heketi (CSI).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default=env_default("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (env LOG_LEVEL; default info)",
    )
    parser.add_argument(
        "--log-format",
        default=env_default("LOG_FORMAT", "auto"),
        choices=["auto", "json", "console"],
        help="json in clusters, console for people; auto picks console on a tty (env LOG_FORMAT)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    json_logs = {"auto": None, "json": True, "console": False}[args.log_format]
    log.configure(level=args.log_level, json=json_logs)
    code: int = args.run(args)
    return code
