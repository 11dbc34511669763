"""Typed Heketi errors. `str(err)` is Heketi's own message (or ours for transport
failures); it never contains the key or a token."""

from provisioner import errors


class HeketiError(errors.ProvisionerError):
    """Base of every Heketi failure.

    `status` is the HTTP status Heketi answered (None when no answer arrived),
    `operation` a short description such as ``POST /volumes``.
    """

    def __init__(self, message: str, *, status: int | None = None, operation: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.operation = operation


class HeketiNotFound(HeketiError, errors.NotFound):
    """The volume, cluster or queue entry does not exist (404)."""


class HeketiNameInUse(HeketiError, errors.AlreadyExists):
    """A volume with this name exists or is being created right now.

    For a name the caller owns, look it up again: Heketi hides a volume until
    its creation has finished, but reserves the name from the start.
    """


class HeketiNoSpace(HeketiError, errors.ResourceExhausted):
    """No cluster has room for the requested bricks."""


class HeketiAuthError(HeketiError, errors.PermissionDenied):
    """401/403: wrong key, clock skew, or a role without access. Never retried."""


class HeketiConflict(HeketiError, errors.Aborted):
    """Another operation on the same volume is still running; retry later.

    Heketi says so with a 500 carrying its ErrConflict text ("The target exists,
    contains other items, or is in use."), e.g. for a delete resent while the
    first delete runs; a 409 (a proxy, or the Heketi database volume) maps here too.
    """


class HeketiBusy(HeketiError, errors.Unavailable):
    """429 (`max_inflight_operations` reached) still answered after all retries."""


class HeketiUnavailable(HeketiError, errors.Unavailable):
    """Heketi unreachable, timing out or answering 502/503/504 after all retries."""


class HeketiInvalidRequest(HeketiError, errors.InvalidArgument):
    """Heketi refused the request as malformed (400/422), or our config is invalid."""


class HeketiOperationFailed(HeketiError, errors.Internal):
    """An operation ended in failure (500), or an answer broke the API contract."""


class HeketiOutcomeUnknown(HeketiError, errors.DeadlineExceeded):
    """A create/expand/delete may or may not have taken effect.

    Raised when the answer was lost after the request may have reached Heketi,
    when the queue entry vanished (404: read already, or Heketi restarted), or
    when the operation deadline passed while polling. Resolve by looking the
    volume up by name (create) or by id (expand/delete).

    `queue_path` is Heketi's queue entry of an operation that was accepted and may
    still be running (None when the request's answer was lost, or Heketi no longer
    knows the entry): `HeketiClient.poll_expand` tells how that operation ended.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        operation: str = "",
        queue_path: str | None = None,
    ) -> None:
        super().__init__(message, status=status, operation=operation)
        self.queue_path = queue_path
