"""Pending claims per StorageClass, counted from the caches at each scrape."""

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from provisioner.controller.signals import PendingClaims
from provisioner.core import annotations

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC).timestamp()


class FakeCache:
    """What the collector reads of an Informer: its objects."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = {o["metadata"]["name"]: o for o in objects}

    def items(self) -> list[dict[str, Any]]:
        return list(self.objects.values())

    def get(self, key: str) -> dict[str, Any] | None:
        return self.objects.get(key)


def storage_class(name: str, provisioner: str = annotations.DRIVER_NAME) -> dict[str, Any]:
    return {"metadata": {"name": name}, "provisioner": provisioner}


def claim(
    name: str,
    *,
    storage_class: str = "glusterfs",
    created: str = "2026-12-07T11:55:00Z",
    volume: str = "",
    **metadata: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "apps", "creationTimestamp": created, **metadata},
        "spec": {"storageClassName": storage_class, "volumeName": volume},
    }


def scrape(claims: list[dict[str, Any]], classes: list[dict[str, Any]]) -> dict[str, Any]:
    collector = PendingClaims(
        FakeCache(claims),  # type: ignore[arg-type]
        FakeCache(classes),  # type: ignore[arg-type]
        driver=annotations.DRIVER_NAME,
        clock=lambda: NOW,
    )
    registry = CollectorRegistry()
    registry.register(collector)
    return {
        (sample.name, sample.labels.get("storageclass")): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


PENDING = "glusterfs_provisioner_pending_claims"
AGE = "glusterfs_provisioner_oldest_pending_claim_age_seconds"


def test_claims_without_a_volume_are_counted_per_class_with_the_oldest_age() -> None:
    values = scrape(
        [
            claim("a", created="2026-12-07T11:55:00Z"),
            claim("b", created="2026-12-07T11:30:00Z"),
            claim("c", storage_class="fast", created="2026-12-07T11:59:30Z"),
        ],
        [storage_class("glusterfs"), storage_class("fast")],
    )
    assert values[(PENDING, "glusterfs")] == 2
    assert values[(AGE, "glusterfs")] == 30 * 60
    assert values[(PENDING, "fast")] == 1
    assert values[(AGE, "fast")] == 30


def test_bound_deleting_and_other_drivers_claims_are_not_pending_claims_of_ours() -> None:
    values = scrape(
        [
            claim("bound", volume="pvc-1"),
            claim("leaving", deletionTimestamp="2026-12-07T11:58:00Z"),
            claim("nfs", storage_class="nfs"),
        ],
        [storage_class("glusterfs"), storage_class("nfs", provisioner="nfs.csi.k8s.io")],
    )
    assert values == {(PENDING, "glusterfs"): 0, (AGE, "glusterfs"): 0}


def test_a_claim_whose_class_is_gone_counts_when_it_names_our_driver() -> None:
    ann = {annotations.ANN_STORAGE_PROVISIONER: annotations.DRIVER_NAME}
    values = scrape(
        [claim("orphan", storage_class="deleted", annotations=ann),
         claim("stranger", storage_class="unknown")],
        [],
    )  # fmt: skip
    assert values == {(PENDING, "deleted"): 1, (AGE, "deleted"): 5 * 60}


def test_a_claim_without_a_readable_creation_time_counts_with_age_zero() -> None:
    values = scrape([claim("odd", created="yesterday")], [storage_class("glusterfs")])
    assert values[(PENDING, "glusterfs")] == 1
    assert values[(AGE, "glusterfs")] == 0
