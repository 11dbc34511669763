"""Flags more than one command takes, with their environment fallbacks.

Every command module builds its parser from these helpers, so a flag means the
same thing (same name, same environment variable, same check) wherever it
appears. Flags that select the cluster or the log output are accepted before or
after a command's action (`migrate plan --kubeconfig X` as well as
`migrate --kubeconfig X plan`), as kubectl and helm users expect.
"""

import argparse
import os
from pathlib import Path
from typing import Final

from provisioner import errors
from provisioner.core import annotations

#: Environment variable that may hold the Heketi key instead of --heketi-key-file.
KEY_ENV: Final = "HEKETI_KEY"
#: A key file bigger than this is not a Heketi key (guards against a wrong path).
KEY_FILE_MAX_BYTES: Final = 4096
#: Log levels `--log-level` accepts.
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
#: Log formats `--log-format` accepts.
LOG_FORMATS: Final = ("auto", "json", "console")


def env_default(var: str, default: str | None = None) -> str | None:
    """The value of environment variable `var`, else `default` (flag fallback)."""
    return os.environ.get(var, default)


def add_log_flags(parser: argparse.ArgumentParser, *, repeated: bool = False) -> None:
    """`--log-level` and `--log-format`. `repeated=True` adds them to a command's
    own parser as well, with no default of their own, so that a value given
    after the command overrides the one given before it and none is lost."""
    parser.add_argument(
        "--log-level",
        default=argparse.SUPPRESS if repeated else env_default("LOG_LEVEL", "info"),
        choices=LOG_LEVELS,
        help="log verbosity (env LOG_LEVEL; default info)",
    )
    parser.add_argument(
        "--log-format",
        default=argparse.SUPPRESS if repeated else env_default("LOG_FORMAT", "auto"),
        choices=LOG_FORMATS,
        help="json in clusters, console for people; auto picks console on a tty (env LOG_FORMAT)",
    )


def add_cluster_flags(
    parser: argparse.ArgumentParser, *, driver_role: str, repeated: bool = False
) -> None:
    """`--kubeconfig` and `--driver-name`, with their environment fallbacks, for every
    command that talks to the Kubernetes API; `driver_role` says what the name
    selects. `repeated=True` is for an action's parser below a command that already
    has them (see `add_log_flags`)."""
    parser.add_argument(
        "--kubeconfig",
        default=argparse.SUPPRESS if repeated else env_default("KUBECONFIG"),
        help="kubeconfig file (env KUBECONFIG); in-cluster config when absent",
    )
    parser.add_argument(
        "--driver-name",
        default=argparse.SUPPRESS
        if repeated
        else env_default("DRIVER_NAME", annotations.DRIVER_NAME),
        help=f"{driver_role} (env DRIVER_NAME; default {annotations.DRIVER_NAME})",
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
