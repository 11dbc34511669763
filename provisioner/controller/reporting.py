"""What the reconcilers tell people: Events on the objects, and the operation metrics."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from provisioner import errors
from provisioner.controller.events import EventRecorder
from provisioner.controller.metrics import Metrics
from provisioner.controller.writes import NotLeading
from provisioner.kube.api import KubeConflict, Obj


class Reporter:
    """Events and metrics of provision / delete / expand operations."""

    def __init__(self, *, events: EventRecorder, metrics: Metrics) -> None:
        self.events = events
        self._metrics = metrics

    @contextmanager
    def observed(
        self, operation: str, *, involved: Obj, reason: str, failure: Callable[[Exception], str]
    ) -> Iterator[None]:
        """Count and time one `operation`; a domain error becomes a Warning Event
        `reason` on `involved` with the message `failure(err)` and is re-raised.
        Losing the lease and write conflicts are retries, not failures."""
        started = time.monotonic()
        try:
            yield
        except (NotLeading, KubeConflict):
            raise
        except errors.ProvisionerError as err:
            self._metrics.operations.labels(operation, "failure").inc()
            self.events.warning(involved, reason, failure(err))
            raise
        self._metrics.operations.labels(operation, "success").inc()
        self._metrics.duration.labels(operation).observe(time.monotonic() - started)
        self._metrics.last_success.labels(operation).set_to_current_time()

    def rejected(self, operation: str, *, involved: Obj, reason: str, message: str) -> None:
        """An operation refused for a cause only the user can remove (one Event)."""
        self.events.warning(involved, reason, message)
        self._metrics.operations.labels(operation, "rejected").inc()
