"""`glusterfs-provisioner <command>`: flags (with environment fallbacks) → config → run().

Each command lives in its own module exposing `register(subparsers)`, which adds
a sub-parser and sets `run=<callable(args) -> int>` as its default. The flags
they share are built in `provisioner.flags`.
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from provisioner import __version__, log
from provisioner.audit import command as audit_command
from provisioner.controller import command as controller_command
from provisioner.csi import node_command
from provisioner.flags import add_log_flags
from provisioner.migrate import command as migrate_command

#: The commands, in the order `--help` lists them.
COMMANDS: tuple[Callable[[Any], None], ...] = (
    node_command.register,
    controller_command.register,
    audit_command.register,
    migrate_command.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glusterfs-provisioner",
        description="Dynamic GlusterFS volumes for Kubernetes through Heketi (CSI).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_log_flags(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    for command_parser in subparsers.choices.values():
        add_log_flags(command_parser, repeated=True)
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
