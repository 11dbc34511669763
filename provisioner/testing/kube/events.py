"""core/v1 Events and events.k8s.io/v1 Events are one resource in two shapes.

The store keeps the core/v1 shape; these functions convert like the apiserver does.
"""

from typing import Any

JSON = dict[str, Any]

#: core/v1 field -> events.k8s.io/v1 field (fields with the same name are copied as is)
_RENAMED = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
)
_SHARED = (
    "metadata",
    "reason",
    "type",
    "reportingInstance",
    "action",
    "related",
    "series",
    "eventTime",
)


def to_events_v1(core: JSON) -> JSON:
    out: JSON = {"kind": "Event", "apiVersion": "events.k8s.io/v1"}
    for field in _SHARED:
        if field in core:
            out[field] = core[field]
    for old, new in _RENAMED:
        if old in core:
            out[new] = core[old]
    return out


def to_core(v1: JSON) -> JSON:
    out: JSON = {"kind": "Event", "apiVersion": "v1"}
    for field in _SHARED:
        if field in v1:
            out[field] = v1[field]
    for old, new in _RENAMED:
        if new in v1:
            out[old] = v1[new]
    return out


def field_in_core(field: str) -> str:
    """The core/v1 field path an events.k8s.io/v1 field selector label refers to."""
    head, _, rest = field.partition(".")
    for old, new in _RENAMED:
        if head == new:
            return f"{old}.{rest}" if rest else old
    return field
