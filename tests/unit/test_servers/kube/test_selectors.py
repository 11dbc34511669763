"""Label and field selector parsing and matching (k8s.io/apimachinery grammar)."""

import pytest

from testbed.kube.errors import ApiError
from testbed.kube.selectors import parse_field_selector, parse_label_selector


def _obj(labels: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"name": "x", "namespace": "ns", "labels": labels}}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param("a=1", {"a": "1"}, True, id="equals"),
        pytest.param("a=1", {}, False, id="equals-absent"),
        pytest.param("a!=1", {}, True, id="not-equals-matches-absent"),
        pytest.param("a in (1, 2)", {"a": "2"}, True, id="in"),
        pytest.param("a notin (1,2)", {}, True, id="notin-matches-absent"),
        pytest.param("a", {"a": ""}, True, id="exists-with-empty-value"),
        pytest.param("!a", {"b": "1"}, True, id="not-exists"),
        pytest.param("a>5", {"a": "7"}, True, id="greater-than"),
        pytest.param("a<5", {"a": "x"}, False, id="less-than-non-number"),
        pytest.param(
            "example.com/a=1,b in (x)",
            {"example.com/a": "1", "b": "x"},
            True,
            id="prefixed-key-and-set",
        ),
        pytest.param("a=", {"a": ""}, True, id="empty-value"),
    ],
)
def test_label_selector_matches(selector: str, labels: dict[str, str], expected: bool) -> None:
    parsed = parse_label_selector(selector)
    assert parsed is not None
    assert parsed.matches(_obj(labels)) is expected


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param("a in ()", id="empty-set"),
        pytest.param("a in (x", id="unclosed-set"),
        pytest.param("a=b,", id="trailing-comma"),
        pytest.param("-a=b", id="bad-key"),
        pytest.param("a=b c", id="space-in-value"),
        pytest.param("a>x", id="non-integer-bound"),
    ],
)
def test_malformed_label_selector_is_a_bad_request(selector: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector(selector)
    assert err.value.code == 400


def test_empty_label_selector_matches_everything() -> None:
    assert parse_label_selector("  ") is None


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param("metadata.name=x", True, id="equals"),
        pytest.param("metadata.name==x,metadata.namespace=ns", True, id="double-equals-and"),
        pytest.param("metadata.name!=x", False, id="not-equals"),
        pytest.param(r"metadata.name=a\,b", False, id="escaped-comma"),
    ],
)
def test_field_selector_matches(selector: str, expected: bool) -> None:
    parsed = parse_field_selector(selector, ("metadata.name", "metadata.namespace"))
    assert parsed is not None
    assert parsed.matches(_obj({})) is expected


def test_unsupported_field_label_names_the_field() -> None:
    with pytest.raises(ApiError) as err:
        parse_field_selector("spec.x=1", ("metadata.name",))
    assert (err.value.code, err.value.message) == (400, "field label not supported: spec.x")
