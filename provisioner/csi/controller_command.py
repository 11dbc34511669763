"""Flags of `glusterfs-provisioner node --controller-service` and the servicer they build.

With `--controller-service` the node plugin binary also serves the CSI
Controller service, for the kubernetes-csi external-provisioner and
external-resizer sidecars ("standard sidecar" deployment). `--heketi-url`
names the plugin's own Heketi: used when a request's secrets carry no
`resturl`, and needed for ListVolumes and GetCapacity (which carry no secrets).
Its key comes from a file or the environment, never from a flag.
"""

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from provisioner import errors
from provisioner.csi.controller import ControllerService
from provisioner.csi.heketi_access import HeketiDefaults
from provisioner.csi.server import VolumeLocks
from provisioner.flags import KEY_ENV, env_default, read_heketi_key
from provisioner.heketi.registry import HeketiClients
from provisioner.storageclass import DEFAULT_REST_USER
from provisioner.volumes import VolumeService

_TRUE: Final = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class ControllerServiceConfig:
    """Settings of the CSI Controller service (from the `node` command's flags)."""

    heketi: HeketiDefaults


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The controller-service flags (each with an environment fallback)."""
    group = parser.add_argument_group("CSI Controller service (standard sidecar deployment)")
    group.add_argument(
        "--controller-service",
        action="store_true",
        default=(env_default("CONTROLLER_SERVICE", "false") or "").lower() in _TRUE,
        help="also serve the CSI Controller service (CreateVolume, DeleteVolume, "
        "ControllerExpandVolume, ...) for external-provisioner/external-resizer "
        "(env CONTROLLER_SERVICE=true)",
    )
    group.add_argument(
        "--heketi-url",
        default=env_default("HEKETI_URL"),
        help="the plugin's own Heketi, http(s)://host:port: used when a request's secrets "
        "have no 'resturl'; enables ListVolumes and GetCapacity (env HEKETI_URL)",
    )
    group.add_argument(
        "--heketi-user",
        default=env_default("HEKETI_USER", DEFAULT_REST_USER),
        help="Heketi user for --heketi-url when secrets name none (env HEKETI_USER)",
    )
    group.add_argument(
        "--heketi-key-file",
        type=Path,
        default=env_default("HEKETI_KEY_FILE"),
        help=f"file holding the key of --heketi-user (env HEKETI_KEY_FILE; or put the key "
        f"itself in env {KEY_ENV})",
    )
    group.add_argument(
        "--heketi-ca-file",
        default=env_default("HEKETI_CA_FILE"),
        help="PEM CA bundle for an https --heketi-url (env HEKETI_CA_FILE)",
    )


def config_from_args(args: argparse.Namespace) -> ControllerServiceConfig | None:
    """The controller config, or None without --controller-service (InvalidArgument)."""
    if not args.controller_service:
        return None
    if args.heketi_ca_file and not os.path.isabs(args.heketi_ca_file):
        raise errors.InvalidArgument("--heketi-ca-file must be an absolute path")
    if not args.heketi_user:
        raise errors.InvalidArgument("--heketi-user must not be empty")
    return ControllerServiceConfig(
        heketi=HeketiDefaults(
            url=args.heketi_url or None,
            user=args.heketi_user,
            key=read_heketi_key(args.heketi_key_file, os.environ.get(KEY_ENV)),
            ca_file=args.heketi_ca_file or None,
        )
    )


def build(
    config: ControllerServiceConfig | None, *, locks: VolumeLocks, heketi: HeketiClients
) -> ControllerService | None:
    """The Controller servicer over the process's Heketi clients, sharing the node's locks."""
    if config is None:
        return None
    return ControllerService(
        volumes=VolumeService(clients=heketi), heketi=config.heketi, locks=locks
    )
