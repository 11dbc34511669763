"""What the alerts about claims need, read from the watch cache at each scrape.

A claim of ours still Pending is the first thing a user notices ("my pod does not
start"), and its age is the one number that says whether to page: so each scrape
counts, per StorageClass of this driver, the claims without a volume and the age of
the oldest. Computed on scrape from the cache (no extra API calls, nothing to keep
in step): 10,000 claims take a few milliseconds, and Prometheus scrapes every 30 s.
"""

import time
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from provisioner.controller import objects as o
from provisioner.controller.classes import StorageClasses
from provisioner.controller.informer import Informer
from provisioner.kube.api import Obj
from provisioner.metrics import PREFIX


class PendingClaims(Collector):
    """`…_pending_claims` and `…_oldest_pending_claim_age_seconds` per StorageClass.

    Every class of this driver has both series (0 when nothing waits), so a dashboard
    shows a flat line rather than nothing, and a class deleted under waiting claims
    still shows them.
    """

    def __init__(
        self,
        claims: Informer,
        class_cache: Informer,
        *,
        driver: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._claims = claims
        self._classes = StorageClasses(class_cache, driver=driver)
        self._class_cache = class_cache
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock()
        count: dict[str, int] = {
            str(c["metadata"]["name"]): 0
            for c in self._class_cache.items()
            if self._classes.is_ours(c)
        }
        oldest: dict[str, float] = dict.fromkeys(count, 0.0)
        for pvc in self._claims.items():
            name = o.claim_class(pvc)
            if not self._waiting(pvc, name):
                continue
            count[name] = count.get(name, 0) + 1
            oldest[name] = max(oldest.get(name, 0.0), _age(pvc, now))
        yield _family("pending_claims", "Claims of this driver without a volume yet.", count)
        yield _family(
            "oldest_pending_claim_age_seconds",
            "Age of the oldest claim of this driver without a volume (0: none waits).",
            oldest,
        )

    def _waiting(self, pvc: Obj, class_name: str) -> bool:
        """Ours (our class; with the class gone, a claim that names our driver), unbound,
        not being deleted."""
        if (pvc.get("spec") or {}).get("volumeName") or pvc["metadata"].get("deletionTimestamp"):
            return False
        storage_class = self._classes.get(class_name)
        if storage_class is not None:
            return self._classes.is_ours(storage_class)
        return o.claim_names_provisioner(pvc, self._classes.driver)


def _age(pvc: Obj, now: float) -> float:
    created = pvc["metadata"].get("creationTimestamp")
    if not created:
        return 0.0
    try:
        since = datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
    return max(0.0, now - since)


def _family(
    name: str, documentation: str, values: dict[str, int] | dict[str, float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=["storageclass"])
    for storage_class, value in sorted(values.items()):
        family.add_metric([storage_class], float(value))
    return family
