"""The benchmark's pure pieces: request classification, ideals, targets, percentiles."""

import pytest

from bench import report
from bench.hosts import resource_of
from bench.node import _percentile
from bench.provisioning import _per_claim, ideal_seconds


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        pytest.param("/api/v1/namespaces/ns/persistentvolumeclaims/c", "persistentvolumeclaims",
                     id="namespaced-object"),
        pytest.param("/api/v1/namespaces/ns/persistentvolumeclaims/c/status",
                     "persistentvolumeclaims/status", id="status-subresource"),
        pytest.param("/api/v1/persistentvolumes", "persistentvolumes", id="cluster-collection"),
        pytest.param("/api/v1/namespaces/ns", "namespaces", id="namespace-object"),
        pytest.param("/apis/coordination.k8s.io/v1/namespaces/s/leases/l", "leases", id="group"),
        pytest.param("/apis/events.k8s.io/v1/namespaces/ns/events", "events", id="events-group"),
        pytest.param("/api/v1/namespaces/ns/events?limit=1", "events", id="query-ignored"),
        pytest.param("/apis", "discovery", id="discovery"),
        pytest.param("/version", "discovery", id="version"),
    ],
)  # fmt: skip
def test_request_paths_are_counted_by_resource(path: str, resource: str) -> None:
    assert resource_of(path) == resource


def test_ideal_burst_time_is_whole_rounds_of_heketi_slots() -> None:
    assert ideal_seconds(claims=500, inflight=8, latency_ms=200) == pytest.approx(12.6)


def test_lease_renewals_are_not_charged_to_claims() -> None:
    counts = {
        "create events": 20,
        "patch persistentvolumeclaims": 20,
        "create persistentvolumes": 10,
        "get secrets": 1,
        "update leases": 7,
        "get leases": 7,
    }

    figures = _per_claim(counts, 10)

    assert figures["api_writes_per_pvc"] == 5.0
    assert figures["api_gets_per_pvc"] == 0.1
    assert figures["lease_requests"] == 14


def test_burst_target_is_relative_to_the_ideal() -> None:
    rows = report.evaluate({"burst": {"seconds": 13.0, "ideal_seconds": 12.6}})

    (row,) = rows
    assert (row["target"], row["ideal"], row["ratio_to_ideal"], row["met"]) == (
        "<= 13.23",
        12.6,
        1.03,
        True,
    )


@pytest.mark.parametrize(
    ("results", "met"),
    [
        pytest.param({"node": {"fuse_clients": 1}}, True, id="one-client"),
        pytest.param({"node": {"fuse_clients": 2}}, False, id="a-client-per-publish"),
        pytest.param({"burst_instant": {"claims_per_second": 49.9}}, False, id="too-slow"),
        pytest.param({"scale": {"idle_cpu_percent": 0.2}}, True, id="idle"),
    ],
)
def test_targets_are_judged_in_their_direction(results: dict[str, object], met: bool) -> None:
    (row,) = report.evaluate(results)
    assert row["met"] is met


def test_figures_without_a_target_are_shown_but_not_judged() -> None:
    (row,) = report.evaluate({"node": {"stage_ms": 70.0}})
    assert "met" not in row
    assert row["target"] == "—"


def test_p95_of_twenty_samples_is_the_nineteenth() -> None:
    assert _percentile([float(v) for v in range(1, 21)], 0.95) == 19.0


def test_writes_per_claim_are_tabled_by_verb_and_object_for_each_wave() -> None:
    results = {
        "burst": {"api_writes_per_pvc_by_verb_and_object": {"create events": 1.0,
                                                           "patch persistentvolumeclaims": 2.01}},
        "burst_instant": {"api_writes_per_pvc_by_verb_and_object": {"create events": 1.0}},
    }  # fmt: skip

    lines = report.writes_table(results).splitlines()

    assert lines[0] == "| API writes per claim | burst | burst, 0 ms |"
    assert lines[2:] == [
        "| create events | 1 | 1 |",
        "| patch persistentvolumeclaims | 2.01 | 0 |",
    ]


def test_write_accounting_leaves_out_reads_and_lease_renewals() -> None:
    counts = {
        "create events": 10,
        "get secrets": 1,
        "update leases": 4,
        "patch persistentvolumeclaims": 21,
    }

    figures = _per_claim(counts, 10)

    assert figures["api_writes_per_pvc_by_verb_and_object"] == {
        "create events": 1.0,
        "patch persistentvolumeclaims": 2.1,
    }
