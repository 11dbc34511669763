"""Domain exceptions.

Code inside the provisioner raises these; one mapping at each edge (the gRPC
interceptor, the controller's Event recorder) turns them into status codes or
messages. No grpc or http imports here. Messages must never contain a secret.
"""


class ProvisionerError(Exception):
    """Base of every error we raise on purpose. `str(err)` is user-facing."""


class InvalidArgument(ProvisionerError):
    """A request or configuration value is malformed or not allowed."""


class NotFound(ProvisionerError):
    """The volume, path or object does not exist."""


class AlreadyExists(ProvisionerError):
    """An object with this name exists and is incompatible with the request."""


class OutOfRange(ProvisionerError):
    """A size or count is outside what can be served."""


class ResourceExhausted(ProvisionerError):
    """The backend has no space left for the request."""


class PermissionDenied(ProvisionerError):
    """Authentication or authorization with a backend failed."""


class Aborted(ProvisionerError):
    """Another operation on the same volume is in progress; retry later."""


class Unavailable(ProvisionerError):
    """A backend cannot be reached or is overloaded; retry later."""


class FailedPrecondition(ProvisionerError):
    """The system is not in a state where the operation can run."""


class DeadlineExceeded(ProvisionerError):
    """An operation did not finish within its deadline; its outcome is unknown."""


class Internal(ProvisionerError):
    """An unexpected failure of ours or of a command we ran."""
