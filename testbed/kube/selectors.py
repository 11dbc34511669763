"""Label and field selectors with the grammar and errors of k8s.io/apimachinery."""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from testbed.kube.errors import bad_request

JSON = dict[str, Any]

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        return present and _compare(value, self.op, self.values[0])


def _compare(value: str | None, op: str, bound: str) -> bool:
    try:
        number = int(value or "")
    except ValueError:
        return False
    return number > int(bound) if op == "gt" else number < int(bound)


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    ok = bool(NAME_PART.match(name)) and len(name) <= 63
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        ok = False
    if not ok:
        raise bad_request(
            f"unable to parse requirement: invalid label key {key!r}: name part must consist "
            "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character"
        )


def _check_value(value: str) -> None:
    if len(value) > 63 or not LABEL_VALUE.match(value):
        raise bad_request(
            f"unable to parse requirement: invalid label value: {value!r}: a valid label must "
            "be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character"
        )


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


_SET_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s+(in|notin)\s*\((.*)\)\s*$")
_BINARY_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s*(==|=|!=|>|<)\s*([^\s,()]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=<>(),]+)\s*$")


def _parse_requirement(text: str) -> Requirement:
    if match := _SET_RE.match(text):
        key, op, raw = match.groups()
        values = tuple(v.strip() for v in raw.split(",")) if raw.strip() else ()
        if not values:
            raise bad_request(
                f"unable to parse requirement: {key}: for 'in', 'notin' "
                "operators, values set can't be empty"
            )
        _check_key(key)
        for value in values:
            _check_value(value)
        return Requirement(key, op, values)
    if match := _BINARY_RE.match(text):
        key, op, value = match.groups()
        _check_key(key)
        if op in (">", "<"):
            if not re.fullmatch(r"-?\d+", value):
                raise bad_request(
                    f"unable to parse requirement: for 'Gt', 'Lt' operators, "
                    f"the value must be an integer: {value!r}"
                )
            return Requirement(key, "gt" if op == ">" else "lt", (value,))
        _check_value(value)
        return Requirement(key, "!=" if op == "!=" else "=", (value,))
    if match := _EXISTS_RE.match(text):
        bang, key = match.groups()
        _check_key(key)
        return Requirement(key, "!" if bang else "exists")
    raise bad_request(
        f"unable to parse requirement: found {text.strip()!r}, expected a "
        "label selector requirement such as key=value, key in (a,b) or !key"
    )


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    def matches(self, obj: JSON) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(req.matches(labels) for req in self.requirements)


def parse_label_selector(text: str) -> LabelSelector | None:
    """None for an empty selector (matches everything); 400 BadRequest if malformed."""
    if not text.strip():
        return None
    parts = _split_top_level(text)
    if any(not part.strip() for part in parts):
        raise bad_request(f"unable to parse requirement: empty requirement in {text!r}")
    return LabelSelector(tuple(_parse_requirement(part) for part in parts))


FieldGetter = Callable[[JSON], str]


def _field_getter(path: str) -> FieldGetter:
    keys = path.split(".")

    def get(obj: JSON) -> str:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict):
            return str(value.get("component", ""))  # Event `source` selects on component
        return str(value)

    return get


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str
    getter: FieldGetter

    def matches(self, obj: JSON) -> bool:
        return (self.getter(obj) == self.value) != self.negate


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...]

    def matches(self, obj: JSON) -> bool:
        return all(req.matches(obj) for req in self.requirements)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _parse_field_term(
    term: str, supported: tuple[str, ...], path_of: Callable[[str], str]
) -> FieldRequirement:
    match = re.match(r"^([^=!]+)(==|!=|=)(.*)$", term)
    if match is None:
        raise bad_request(f"invalid selector: '{term}'; can't understand '{term}'")
    field, op, value = match.group(1).strip(), match.group(2), match.group(3)
    if field not in supported:
        raise bad_request(f"field label not supported: {field}")
    getter = _field_getter(path_of(field))
    return FieldRequirement(field, op == "!=", _unescape(value), getter)


def _same_path(field: str) -> str:
    return field


def parse_field_selector(
    text: str, supported: tuple[str, ...], path_of: Callable[[str], str] = _same_path
) -> FieldSelector | None:
    """None for an empty selector; 400 for bad syntax or a label the type does not support.

    `path_of` maps a selector label to the stored object's field path (events.k8s.io).
    """
    if not text.strip():
        return None
    terms = [t for t in _split_unescaped(text, ",") if t.strip()]
    return FieldSelector(tuple(_parse_field_term(t, supported, path_of) for t in terms))


class Filter:
    """A label selector and a field selector together; `None` parts match everything."""

    def __init__(self, labels: LabelSelector | None, fields: FieldSelector | None) -> None:
        self.labels = labels
        self.fields = fields

    @property
    def empty(self) -> bool:
        return self.labels is None and self.fields is None

    def matches(self, obj: JSON) -> bool:
        if self.labels is not None and not self.labels.matches(obj):
            return False
        return self.fields is None or self.fields.matches(obj)


MATCH_ALL = Filter(None, None)


def parse_filter(
    label_text: str,
    field_text: str,
    supported: tuple[str, ...],
    path_of: Callable[[str], str] = _same_path,
) -> Filter:
    """Both selectors of a request; 400 BadRequest (ApiError) when either is malformed."""
    fields = parse_field_selector(field_text, supported, path_of)
    return Filter(parse_label_selector(label_text), fields)
