"""core/v1 Events and events.k8s.io/v1 Events are one resource in two shapes.

The store keeps the core/v1 shape; these functions convert like the apiserver does.
"""

from typing import Any

from testbed.kube.resources import ResourceType

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


def is_events_v1(rt: ResourceType) -> bool:
    """Whether `rt` is the events.k8s.io/v1 shape (stored as core/v1 Events)."""
    return rt.group == "events.k8s.io"


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


#: Length limits of the apiserver's Event validation.
_NOTE_LIMIT = 1024
_SHORT_LIMIT = 128
_REQUIRED = "FieldValueRequired"
_INVALID = "FieldValueInvalid"
_TOO_LONG = "FieldValueTooLong"


def validation_causes(
    core: JSON, namespace: str, *, events_api: bool
) -> list[tuple[str, str, str]]:
    """The apiserver's Event rules: (field, reason, message) for each violation.

    `core` is the stored (core/v1) shape; field names in messages follow the API
    the request came through. Events without eventTime (old-style, core/v1 only)
    just need their namespace to match the involved object's.
    """
    names = _V1_NAMES if events_api else _CORE_NAMES
    involved = core.get("involvedObject") or {}
    involved_ns = involved.get("namespace") or ""
    causes: list[tuple[str, str, str]] = []
    if not core.get("eventTime") and not events_api:
        allowed = ("", "default") if not involved_ns else (involved_ns,)
    else:
        allowed = ("default", "kube-system") if not involved_ns else (involved_ns,)
        causes += _new_style_causes(core, names)
    if namespace not in allowed:
        causes.append(
            (
                f"{names['involvedObject']}.namespace",
                _INVALID,
                f'Invalid value: "{involved_ns}": does not match event.namespace',
            )
        )
    return causes


_CORE_NAMES = {
    "involvedObject": "involvedObject",
    "reportingComponent": "reportingComponent",
    "message": "message",
    "eventTime": "eventTime",
}
_V1_NAMES = {
    "involvedObject": "regarding",
    "reportingComponent": "reportingController",
    "message": "note",
    "eventTime": "eventTime",
}


def _new_style_causes(core: JSON, names: dict[str, str]) -> list[tuple[str, str, str]]:
    causes: list[tuple[str, str, str]] = []
    required = ("eventTime", "reportingComponent", "reportingInstance", "action", "reason")
    for field in required:
        label = names.get(field, field)
        value = core.get(field)
        if not value:
            causes.append((label, _REQUIRED, "Required value"))
        elif field != "eventTime" and len(str(value)) > _SHORT_LIMIT:
            causes.append(
                (label, _TOO_LONG, f"Too long: may not be more than {_SHORT_LIMIT} bytes")
            )
    if len(str(core.get("message") or "")) > _NOTE_LIMIT:
        causes.append(
            (names["message"], _TOO_LONG, f"Too long: may not be more than {_NOTE_LIMIT} bytes")
        )
    return causes
