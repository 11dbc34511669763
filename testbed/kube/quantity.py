"""Kubernetes resource quantities (`10Gi`, `500M`, `1.5e3`) as exact fractions."""

import re
from fractions import Fraction
from functools import lru_cache

_SUFFIXES: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}

_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE](?P<exp>[+-]?\d+))?$"
)


class QuantityError(ValueError):
    """The string is not a Kubernetes quantity."""


def parse_quantity(text: object) -> Fraction:
    """The exact value of a quantity; QuantityError with the kube message if malformed."""
    if isinstance(text, int) and not isinstance(text, bool):
        return Fraction(text)
    if not isinstance(text, str):
        raise QuantityError(_MESSAGE)
    return _parse_text(text)


_MESSAGE = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


@lru_cache(maxsize=1024)
def _parse_text(text: str) -> Fraction:
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(_MESSAGE)
    value = Fraction(match.group("num"))
    if match.group("exp") is not None:
        return value * Fraction(10) ** int(match.group("exp"))
    return value * _SUFFIXES[match.group("suffix") or ""]
