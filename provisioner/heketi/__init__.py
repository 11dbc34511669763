"""Heketi REST client and its result types."""

from provisioner.heketi.client import HeketiClient
from provisioner.heketi.config import HeketiConfig
from provisioner.heketi.errors import (
    HeketiAuthError,
    HeketiBusy,
    HeketiConflict,
    HeketiError,
    HeketiInvalidRequest,
    HeketiNameInUse,
    HeketiNoSpace,
    HeketiNotFound,
    HeketiOperationFailed,
    HeketiOutcomeUnknown,
    HeketiPlacementRefused,
    HeketiUnavailable,
)
from provisioner.heketi.registry import HeketiClients
from provisioner.heketi.types import Cluster, Durability, Volume, VolumeCreateRequest

__all__ = [
    "Cluster",
    "Durability",
    "HeketiAuthError",
    "HeketiBusy",
    "HeketiClient",
    "HeketiClients",
    "HeketiConfig",
    "HeketiConflict",
    "HeketiError",
    "HeketiInvalidRequest",
    "HeketiNameInUse",
    "HeketiNoSpace",
    "HeketiNotFound",
    "HeketiOperationFailed",
    "HeketiOutcomeUnknown",
    "HeketiPlacementRefused",
    "HeketiUnavailable",
    "Volume",
    "VolumeCreateRequest",
]
