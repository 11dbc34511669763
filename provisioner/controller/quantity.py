"""Kubernetes resource quantities ("10Gi", "500M", "1.5Gi", "2e9") → bytes."""

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Final

from provisioner.errors import InvalidArgument

_SUFFIXES: Final[dict[str, Decimal]] = {
    "": Decimal(1),
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
}
_QUANTITY: Final = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$"
)
GIB: Final = 1 << 30


def parse_bytes(quantity: str) -> int:
    """The quantity in bytes, rounded up to a whole byte."""
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        raise InvalidArgument(f"{quantity!r} is not a Kubernetes quantity (e.g. 10Gi)")
    suffix = match.group("suffix") or ""
    try:
        number = Decimal(match.group("number"))
        if suffix[:1] in ("e", "E"):
            value = number * (Decimal(10) ** int(suffix[1:]))
        else:
            value = number * _SUFFIXES[suffix]
    except (InvalidOperation, KeyError, ValueError) as exc:
        raise InvalidArgument(f"{quantity!r} is not a Kubernetes quantity (e.g. 10Gi)") from exc
    if value < 0:
        raise InvalidArgument(f"quantity {quantity!r} must not be negative")
    return math.ceil(value)


def gib_quantity(size_gib: int) -> str:
    """The canonical quantity string of a whole number of GiB."""
    return f"{size_gib}Gi"
