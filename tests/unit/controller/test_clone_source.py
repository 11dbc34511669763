"""Which data sources a claim may clone from (pure checks of the claim's spec)."""

from typing import Any

import pytest

from provisioner.controller.clone_source import data_source, source_problem


def claim(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "copy", "namespace": "apps"}, "spec": spec}


def test_data_source_ref_wins_over_data_source() -> None:
    pvc = claim(
        dataSource={"kind": "PersistentVolumeClaim", "name": "a"},
        dataSourceRef={"kind": "PersistentVolumeClaim", "name": "b"},
    )
    assert data_source(pvc) == {"kind": "PersistentVolumeClaim", "name": "b"}


@pytest.mark.parametrize(
    "source",
    [
        {"kind": "PersistentVolumeClaim", "name": "data"},
        {"kind": "PersistentVolumeClaim", "name": "data", "apiGroup": ""},
        {"kind": "PersistentVolumeClaim", "name": "data", "namespace": "apps"},
    ],
    ids=["plain", "empty-api-group", "same-namespace"],
)
def test_a_claim_of_the_same_namespace_is_a_usable_source(source: dict[str, Any]) -> None:
    assert source_problem(claim(dataSourceRef=source)) is None


def test_a_claim_without_a_data_source_has_no_problem() -> None:
    assert source_problem(claim()) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            {"kind": "VolumeSnapshot", "name": "s", "apiGroup": "snapshot.storage.k8s.io"},
            "a data source of kind snapshot.storage.k8s.io/VolumeSnapshot is not supported: "
            "this provisioner clones claims only (dataSource kind PersistentVolumeClaim); "
            "make a new claim without it",
            id="snapshot",
        ),
        pytest.param(
            {"kind": "Widget", "name": "w", "apiGroup": "example.com"},
            "a data source of kind example.com/Widget is not supported",
            id="populator",
        ),
        pytest.param(
            {"kind": "PersistentVolumeClaim", "name": "data", "namespace": "other"},
            "the source claim other/data is in another namespace; a claim can clone only a "
            "claim of its own namespace (apps)",
            id="other-namespace",
        ),
    ],
)
def test_a_source_that_can_never_be_cloned_says_what_to_change(
    source: dict[str, Any], expected: str
) -> None:
    problem = source_problem(claim(dataSourceRef=source))
    assert problem is not None and problem.startswith(expected)
