"""JSON patch, JSON merge patch and strategic merge patch as pure functions."""

from typing import Any

import pytest

from testbed.kube.errors import ApiError
from testbed.kube.patch import StrategicMerger, json_patch, merge_patch

RULES = {"metadata.finalizers": "", "status.conditions": "type"}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        pytest.param(
            [{"op": "add", "path": "/l/-", "value": 3}],
            {"l": [1, 2, 3], "m": {"k": "v"}},
            id="append",
        ),
        pytest.param(
            [{"op": "add", "path": "/l/0", "value": 0}],
            {"l": [0, 1, 2], "m": {"k": "v"}},
            id="insert",
        ),
        pytest.param(
            [{"op": "move", "from": "/m/k", "path": "/m/j"}],
            {"l": [1, 2], "m": {"j": "v"}},
            id="move",
        ),
        pytest.param(
            [{"op": "replace", "path": "/m/a~1b", "value": 1}], None, id="missing-escaped-key"
        ),
        pytest.param(
            [{"op": "test", "path": "/l/1", "value": 2}, {"op": "remove", "path": "/l/1"}],
            {"l": [1], "m": {"k": "v"}},
            id="test-then-remove",
        ),
        pytest.param(
            [{"op": "copy", "from": "/l", "path": "/c"}],
            {"l": [1, 2], "m": {"k": "v"}, "c": [1, 2]},
            id="copy",
        ),
    ],
)
def test_json_patch(ops: list[dict[str, Any]], expected: dict[str, Any] | None) -> None:
    doc = {"l": [1, 2], "m": {"k": "v"}}
    if expected is None:
        with pytest.raises(ApiError) as err:
            json_patch(doc, ops)
        assert err.value.code == 422
    else:
        assert json_patch(doc, ops) == expected


def test_merge_patch_does_not_change_its_input() -> None:
    doc = {"a": {"b": 1, "c": 2}}
    assert merge_patch(doc, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}
    assert doc == {"a": {"b": 1, "c": 2}}


def test_strategic_merge_unions_primitive_lists_with_a_rule() -> None:
    doc = {"metadata": {"finalizers": ["a"]}}
    merged = StrategicMerger(RULES).apply(doc, {"metadata": {"finalizers": ["a", "b"]}})
    assert merged == {"metadata": {"finalizers": ["a", "b"]}}


def test_strategic_merge_replaces_lists_without_a_rule() -> None:
    doc = {"spec": {"accessModes": ["ReadWriteOnce"]}}
    merged = StrategicMerger(RULES).apply(doc, {"spec": {"accessModes": ["ReadWriteMany"]}})
    assert merged == {"spec": {"accessModes": ["ReadWriteMany"]}}


def test_strategic_merge_orders_keyed_lists_by_set_element_order() -> None:
    doc = {"status": {"conditions": [{"type": "A"}, {"type": "B"}]}}
    patch = {
        "status": {
            "$setElementOrder/conditions": [{"type": "B"}, {"type": "A"}],
            "conditions": [{"type": "A", "status": "True"}],
        }
    }
    merged = StrategicMerger(RULES).apply(doc, patch)
    assert merged["status"]["conditions"] == [{"type": "B"}, {"type": "A", "status": "True"}]


def test_strategic_merge_keyed_item_without_key_is_rejected() -> None:
    with pytest.raises(ApiError) as err:
        StrategicMerger(RULES).apply({}, {"status": {"conditions": [{"status": "True"}]}})
    assert err.value.code == 422


def test_strategic_merge_retain_keys_drops_other_fields() -> None:
    doc = {"spec": {"a": 1, "b": 2}}
    merged = StrategicMerger(RULES).apply(doc, {"spec": {"$retainKeys": ["a", "c"], "c": 3}})
    assert merged == {"spec": {"a": 1, "c": 3}}
