"""Heketi answers map to typed errors carrying Heketi's own message."""

import pytest

from provisioner import errors
from provisioner.heketi import (
    HeketiAuthError,
    HeketiBusy,
    HeketiConflict,
    HeketiError,
    HeketiInvalidRequest,
    HeketiNameInUse,
    HeketiNoSpace,
    HeketiNotFound,
    HeketiOperationFailed,
    HeketiUnavailable,
)
from provisioner.heketi.transport import Exchange, error_for


@pytest.mark.parametrize(
    ("status", "text", "kind", "domain"),
    [
        (400, "Invalid replica value\n", HeketiInvalidRequest, errors.InvalidArgument),
        (422, "request unable to be parsed\n", HeketiInvalidRequest, errors.InvalidArgument),
        (401, "Administrator access required\n", HeketiAuthError, errors.PermissionDenied),
        (403, "Forbidden\n", HeketiAuthError, errors.PermissionDenied),
        (404, "Id not found\n", HeketiNotFound, errors.NotFound),
        (
            409,
            "The target exists, contains other items, or is in use.\n",
            HeketiConflict,
            errors.Aborted,
        ),
        (429, "Server busy. Retry operation later.\n", HeketiBusy, errors.Unavailable),
        (503, "Service Unavailable\n", HeketiUnavailable, errors.Unavailable),
        (500, "Failed to allocate new volume: No space\n", HeketiNoSpace, errors.ResourceExhausted),
        (
            500,
            "Failed to allocate new volume: Volume name 'pvc-1' already in use\n",
            HeketiNameInUse,
            errors.AlreadyExists,
        ),
        (
            500,
            "Failed to set up volume delete: The target exists, contains other items, or is "
            "in use.\n",
            HeketiConflict,
            errors.Aborted,
        ),
        (500, "Unable to execute command on node1\n", HeketiOperationFailed, errors.Internal),
    ],
    ids=[
        "400",
        "422",
        "401",
        "403",
        "404",
        "409",
        "429",
        "503",
        "no-space",
        "name-in-use",
        "pending-operation-conflict",
        "500",
    ],
)
def test_status_maps_to_a_typed_error(
    status: int, text: str, kind: type[HeketiError], domain: type[errors.ProvisionerError]
) -> None:
    error = error_for(Exchange(status, {}, text), "POST /volumes")
    assert type(error) is kind and isinstance(error, domain)
    assert (str(error), error.status, error.operation) == (text.strip(), status, "POST /volumes")


def test_unexpected_status_says_so() -> None:
    error = error_for(Exchange(418, {}, "teapot"), "GET /volumes")
    assert str(error) == "unexpected HTTP 418 from Heketi: teapot"


def test_empty_body_falls_back_to_the_status() -> None:
    assert str(error_for(Exchange(404, {}, ""), "GET /x")) == "HTTP 404"


@pytest.mark.parametrize(
    ("kind", "domain"),
    [
        (HeketiBusy, errors.Unavailable),
        (HeketiUnavailable, errors.Unavailable),
        (HeketiConflict, errors.Aborted),
        (HeketiNameInUse, errors.AlreadyExists),
        (HeketiAuthError, errors.PermissionDenied),
        (HeketiInvalidRequest, errors.InvalidArgument),
        (HeketiNoSpace, errors.ResourceExhausted),
    ],
)
def test_each_heketi_error_is_the_domain_error_the_edges_map(
    kind: type[HeketiError], domain: type[errors.ProvisionerError]
) -> None:
    assert isinstance(kind("m"), domain)
