"""`glusterfs-provisioner <command>`: flags (with environment fallbacks) → config → run().

Each command lives in its own module exposing `register(subparsers)`, which adds
a sub-parser and sets `run=<callable(args) -> int>` as its default.
"""

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from provisioner import __version__, errors, log, names

#: Environment variable that may hold the Heketi key instead of --heketi-key-file.
KEY_ENV: Final = "HEKETI_KEY"
#: A key file bigger than this is not a Heketi key (guards against a wrong path).
KEY_FILE_MAX_BYTES: Final = 4096

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


def add_cluster_flags(parser: argparse.ArgumentParser, *, driver_role: str) -> None:
    """`--kubeconfig` and `--driver-name`, with their environment fallbacks, for every
    command that talks to the Kubernetes API; `driver_role` says what the name selects."""
    parser.add_argument(
        "--kubeconfig",
        default=env_default("KUBECONFIG"),
        help="kubeconfig file (env KUBECONFIG); in-cluster config when absent",
    )
    parser.add_argument(
        "--driver-name",
        default=env_default("DRIVER_NAME", names.DRIVER_NAME),
        help=f"{driver_role} (env DRIVER_NAME; default {names.DRIVER_NAME})",
    )


def read_heketi_key(path: Path | None, from_env: str | None) -> str | None:
    """The Heketi key from `--heketi-key-file` or env HEKETI_KEY: one source, never
    both (which one wins would be a guess); an empty or oversized file is a mistake,
    not "no key". The key is never echoed in an error."""
    if path is not None and from_env:
        raise errors.InvalidArgument(f"set either --heketi-key-file or {KEY_ENV}, not both")
    if path is None:
        return from_env or None
    try:
        with path.open("rb") as stream:
            raw = stream.read(KEY_FILE_MAX_BYTES + 1)
    except OSError as err:
        raise errors.InvalidArgument(
            f"cannot read --heketi-key-file {path}: {err.strerror}"
        ) from None
    if len(raw) > KEY_FILE_MAX_BYTES:
        raise errors.InvalidArgument(
            f"--heketi-key-file {path} is larger than {KEY_FILE_MAX_BYTES} bytes; "
            "it should hold only the Heketi key"
        )
    key = raw.decode("utf-8", "replace").strip()
    if not key:
        raise errors.InvalidArgument(f"--heketi-key-file {path} is empty")
    return key


def parse_address(text: str) -> tuple[str, int] | None:
    """`:8080`, `0.0.0.0:8080`, `[::1]:8080` → (host, port); empty or `0` → not served."""
    value = text.strip()
    if value in ("", "0"):
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise errors.InvalidArgument(
            f"--metrics-address {text!r} must be HOST:PORT or :PORT (e.g. :8080)"
        )
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - a metrics endpoint for Prometheus


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
