"""Kubernetes quantities as exact values."""

from fractions import Fraction

import pytest

from testbed.kube.quantity import QuantityError, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("1Gi", Fraction(2**30), id="binary"),
        pytest.param("2048Mi", Fraction(2**31), id="binary-mebi"),
        pytest.param("1G", Fraction(10**9), id="decimal"),
        pytest.param("500m", Fraction(1, 2), id="milli"),
        pytest.param("1.5e3", Fraction(1500), id="exponent"),
        pytest.param("0.5Ki", Fraction(512), id="fraction-with-suffix"),
        pytest.param(7, Fraction(7), id="integer"),
    ],
)
def test_quantity_value(text: str | int, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1 Gi", "1gi", "1.2.3", None, [1]])
def test_malformed_quantity_is_rejected(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)
