"""Heketi REST client and its result types."""

from provisioner.heketi.client import HeketiClient, client_for
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
    HeketiUnavailable,
)
from provisioner.heketi.types import Cluster, Durability, Volume, VolumeCreateRequest

__all__ = [
    "Cluster",
    "Durability",
    "HeketiAuthError",
    "HeketiBusy",
    "HeketiClient",
    "HeketiConfig",
    "HeketiConflict",
    "HeketiError",
    "HeketiInvalidRequest",
    "HeketiNameInUse",
    "HeketiNoSpace",
    "HeketiNotFound",
    "HeketiOperationFailed",
    "HeketiOutcomeUnknown",
    "HeketiUnavailable",
    "Volume",
    "VolumeCreateRequest",
    "client_for",
]
