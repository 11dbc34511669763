"""Canonical forms the apiserver writes back: quantities and timestamps.

The apiserver decodes a request into typed Go values and encodes them again, so
`2048Mi` comes back as `2Gi` and `2026-01-01T00:00:00+00:00` as
`2026-01-01T00:00:00Z`. Values it cannot decode make the request a 400.
"""

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from testbed.kube.errors import bad_request
from testbed.kube.quantity import QuantityError, parse_quantity

JSON = dict[str, Any]

_BINARY_SUFFIXES = {0: "", 10: "Ki", 20: "Mi", 30: "Gi", 40: "Ti", 50: "Pi", 60: "Ei"}
_DECIMAL_SUFFIXES = {
    -9: "n",
    -6: "u",
    -3: "m",
    0: "",
    3: "k",
    6: "M",
    9: "G",
    12: "T",
    15: "P",
    18: "E",
}
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


def canonical_quantity(text: object) -> str:
    """The apiserver's canonical spelling of a quantity (format of the input kept)."""
    try:
        value = parse_quantity(text)
    except QuantityError as err:
        raise bad_request(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}"
        ) from err
    spelled = str(text)
    if spelled.endswith("i") and abs(value) >= 1024 and value.denominator == 1:
        return _binary(int(value))
    exponent_form = "e" in spelled.lower() and not spelled.endswith(("Ei", "E"))
    return _decimal(value, exponent_form=exponent_form)


def _binary(number: int) -> str:
    exponent = 0
    while exponent < 60 and number % 1024 == 0:
        number //= 1024
        exponent += 10
    return f"{number}{_BINARY_SUFFIXES[exponent]}"


def _decimal(value: Fraction, *, exponent_form: bool) -> str:
    exponent = 0
    while value.denominator != 1 and exponent > -9:
        value *= 1000
        exponent -= 3
    number = math.ceil(value)
    while number != 0 and number % 1000 == 0 and exponent < 18:
        number //= 1000
        exponent += 3
    if exponent_form:
        return f"{number}e{exponent}" if exponent else str(number)
    return f"{number}{_DECIMAL_SUFFIXES[exponent]}"


def _timestamp(value: Any, fmt: str) -> Any:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise bad_request(f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse')
    return parsed.astimezone(UTC).strftime(fmt)


def _maps(obj: Any, *path: str) -> Iterator[JSON]:
    """Every dict reached by `path`; a "*" step fans out over a list."""
    if not path:
        if isinstance(obj, dict):
            yield obj
        return
    head, rest = path[0], path[1:]
    if head == "*":
        for item in obj if isinstance(obj, list) else ():
            yield from _maps(item, *rest)
    elif isinstance(obj, dict):
        yield from _maps(obj.get(head), *rest)


def _quantities(obj: JSON, *path: str) -> None:
    for mapping in _maps(obj, *path):
        for key, value in mapping.items():
            mapping[key] = canonical_quantity(value)


def _times(obj: JSON, fields: tuple[str, ...], fmt: str, *path: str) -> None:
    for mapping in _maps(obj, *path):
        for field in fields:
            if field in mapping:
                mapping[field] = _timestamp(mapping[field], fmt)


def _pvc(obj: JSON) -> None:
    for section in ("requests", "limits"):
        _quantities(obj, "spec", "resources", section)
    _quantities(obj, "status", "capacity")
    _quantities(obj, "status", "allocatedResources")
    _times(obj, ("lastProbeTime", "lastTransitionTime"), _TIME, "status", "conditions", "*")


def _pv(obj: JSON) -> None:
    _quantities(obj, "spec", "capacity")
    _times(obj, ("lastPhaseTransitionTime",), _TIME, "status")


def _event(obj: JSON) -> None:
    _times(obj, ("firstTimestamp", "lastTimestamp"), _TIME)
    _times(obj, ("eventTime",), _MICRO_TIME)
    _times(obj, ("lastObservedTime",), _MICRO_TIME, "series")


def _lease(obj: JSON) -> None:
    _times(obj, ("acquireTime", "renewTime"), _MICRO_TIME, "spec")


_NORMALIZERS: dict[str, Callable[[JSON], None]] = {
    "persistentvolumeclaims": _pvc,
    "persistentvolumes": _pv,
    "events": _event,
    "leases": _lease,
}


def normalize(bucket: str, obj: JSON) -> None:
    """Rewrite quantities and timestamps of `obj` (a private copy) in canonical form."""
    normalizer = _NORMALIZERS.get(bucket)
    if normalizer is not None:
        normalizer(obj)
