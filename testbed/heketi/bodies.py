"""Request bodies as Heketi v10.4.1 decodes and checks them, before any bookkeeping.

Go's json decoder fills a request struct (any mistyped field: 422 `request unable
to be parsed`; JSON null: the zero value), then ozzo-validation and the handler's
own checks answer 400 with Heketi's wording (api/types.go `Validate`,
apps/glusterfs/app_volume.go `VolumeCreate`, tags.go). `RequestError` carries a
synchronous refusal's status and message to the HTTP side.
"""

import re
from dataclasses import dataclass, replace
from typing import Any

from testbed.heketi import placer

#: Heketi fills in replica 2 when a replicate request gives no count
#: (apps/glusterfs DEFAULT_REPLICA).
DEFAULT_REPLICA = 2
MAX_SNAPSHOT_FACTOR = 100
_GO_MAX_INT32 = 2**31 - 1
_VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_DISPERSE_COMBINATIONS = {(2, 1), (4, 2), (8, 3), (8, 4)}
_DURABILITY_TYPES = ("replicate", "disperse", "none")
#: api types.go ValidateTags / tagNameRe.
_TAG_CHANGES = ("set", "update", "delete")
_TAG_NAME_RE = re.compile(r"^[a-zA-Z0-9_.-]+\Z")
_MAX_TAGS = 32
_MAX_TAG_NAME = 32
_MAX_TAG_VALUE = 64


class RequestError(Exception):
    """A synchronous refusal: HTTP status and Heketi's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class CreateSpec:
    """A validated `POST /volumes` body."""

    size: int
    name: str
    durability: dict[str, Any]
    gid: int
    clusters: tuple[str, ...]
    options: tuple[str, ...]
    snapshot: dict[str, Any]


def create_spec(body: Any) -> CreateSpec:
    """A create request's body checked in Heketi's order: JSON decoding (any
    mistyped field: 422), struct validation, gid, durability type, snapshot factor,
    replica / dispersion. The requested clusters and the minimum size are checked
    after it (`Store.validate_create`)."""
    spec = _decode_create(body)
    _check_struct(spec.size, spec.name)
    if spec.gid < 0:
        raise RequestError(400, "Bad group id less than zero")
    if spec.gid >= _GO_MAX_INT32:
        raise RequestError(400, "Bad group id equal or greater than 2**32")
    if spec.durability["type"] not in _DURABILITY_TYPES:
        raise RequestError(400, "Unknown durability type")
    if spec.snapshot["enable"] and not 1 <= spec.snapshot["factor"] <= MAX_SNAPSHOT_FACTOR:
        raise RequestError(400, "Invalid snapshot factor")
    return replace(spec, durability=_checked_durability(spec.durability))


def _int_field(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise _unparsable()
    return value


def _check_struct(size: int, name: str) -> None:
    """ozzo-validation of VolumeCreateRequest: sorted "field: problem" pairs."""
    problems = {}
    if size == 0:
        problems["size"] = "cannot be blank"
    elif size < 1:
        problems["size"] = "must be no less than 1"
    if name and not _VOLUME_NAME_RE.match(name):
        problems["name"] = "must be in a valid format"
    if problems:
        text = "; ".join(f"{k}: {problems[k]}" for k in sorted(problems))
        raise RequestError(400, f"validation failed: {text}.")


def check_min_size(size_gib: int, durability: dict[str, Any]) -> None:
    """app_volume.go: a volume smaller than Durability.MinVolumeSize() (disperse: one
    1 GiB brick per data brick; in KiB) is refused before any placement."""
    if durability["type"] != "disperse":
        return
    minimum = placer.BRICK_MIN_KIB * int(durability["disperse"]["data"])
    if size_gib * placer.KIB_PER_GIB < minimum:
        raise RequestError(
            400,
            f"Requested volume size ({size_gib} GB) is smaller than the minimum "
            f"supported volume size ({minimum})",
        )


def _decode_create(body: Any) -> CreateSpec:
    """The body as Go's json decoder reads it into VolumeCreateRequest (422 on a type error)."""
    if not isinstance(body, dict):
        raise _unparsable()
    name, clusters, options = (
        _or(body.get(key), empty)
        for key, empty in (("name", ""), ("clusters", []), ("glustervolumeoptions", []))
    )
    if not (isinstance(name, str) and _strings(clusters) and _strings(options)):
        raise _unparsable()
    return CreateSpec(
        size=_int_field(body, "size"),
        name=name,
        durability=_decode_durability(body.get("durability")),
        gid=_int_field(body, "gid"),
        clusters=tuple(clusters),
        options=tuple(options),
        snapshot=_decode_snapshot(body.get("snapshot")),
    )


def _unparsable() -> RequestError:
    return RequestError(422, "request unable to be parsed")


def _or(value: Any, empty: Any) -> Any:
    """JSON null decodes to Go's zero value."""
    return empty if value is None else value


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _object(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _unparsable()
    return raw


def _decode_durability(raw: Any) -> dict[str, Any]:
    durability = _object(raw)
    kind = durability.get("type") or "none"  # Heketi reads "" as none
    disperse = _object(durability.get("disperse"))
    if not isinstance(kind, str):
        raise _unparsable()
    return {
        "type": kind,
        "replicate": {"replica": _int_field(_object(durability.get("replicate")), "replica")},
        "disperse": {
            "data": _int_field(disperse, "data"),
            "redundancy": _int_field(disperse, "redundancy"),
        },
    }


def _checked_durability(durability: dict[str, Any]) -> dict[str, Any]:
    """Heketi's replica and dispersion checks; the durability as Heketi stores it."""
    kind = durability["type"]
    if kind == "replicate":
        replica = durability["replicate"]["replica"]
        if replica > 3:
            raise RequestError(400, "Invalid replica value")
        return {"type": kind, "replicate": {"replica": replica or DEFAULT_REPLICA}, "disperse": {}}
    if kind == "disperse":
        data, redundancy = durability["disperse"]["data"], durability["disperse"]["redundancy"]
        if (data, redundancy) not in _DISPERSE_COMBINATIONS:
            raise RequestError(400, f"Invalid dispersion combination: {data}+{redundancy}")
        return {"type": kind, "replicate": {}, "disperse": {"data": data, "redundancy": redundancy}}
    return {"type": kind, "replicate": {}, "disperse": {}}


def _decode_snapshot(raw: Any) -> dict[str, Any]:
    snapshot = _object(raw)
    enable, factor = _or(snapshot.get("enable"), False), _or(snapshot.get("factor"), 0)
    if not isinstance(enable, bool) or isinstance(factor, bool):
        raise _unparsable()
    if not isinstance(factor, int | float):
        raise _unparsable()
    return {"enable": enable, "factor": factor}


def tags_change(body: Any) -> tuple[str, dict[str, str]]:
    """A `POST /nodes|devices/{id}/tags` body as Heketi v10.4.1 checks it (api
    types.go TagsChangeRequest.Validate, ValidateTags): 422 when it does not decode,
    400 with ozzo-validation's wording otherwise."""
    if not isinstance(body, dict):
        raise _unparsable()
    change, tags = _or(body.get("change_type"), ""), _or(body.get("tags"), {})
    if not isinstance(change, str) or not isinstance(tags, dict):
        raise _unparsable()
    if not all(isinstance(v, str) for v in tags.values()):
        raise _unparsable()
    problems = {}
    tag_problem = _tags_problem(tags)
    if tag_problem:
        problems["tags"] = tag_problem
    if not change:
        problems["change_type"] = "cannot be blank"
    elif change not in _TAG_CHANGES:
        problems["change_type"] = "must be a valid value"
    if problems:
        text = "; ".join(f"{k}: {problems[k]}" for k in sorted(problems))
        raise RequestError(400, f"validation failed: {text}.")
    return change, tags


def _tags_problem(tags: dict[str, str]) -> str:
    if len(tags) > _MAX_TAGS:
        return f"too many tags specified ({len(tags)}), up to {_MAX_TAGS} supported"
    for key, value in tags.items():
        if not key:
            return "tag names may not be empty"
        if len(key) > _MAX_TAG_NAME:
            return f"tag name {key}: the length must be between 1 and {_MAX_TAG_NAME}"
        if len(value) > _MAX_TAG_VALUE:
            return f"value of tag {key}: the length must be no more than {_MAX_TAG_VALUE}"
        if not _TAG_NAME_RE.match(key):
            return f"invalid characters in tag name {key}"
    return ""


def applied_tags(current: dict[str, str], change: str, tags: dict[str, str]) -> dict[str, str]:
    """tags.go ApplyTags: set replaces, update merges, delete removes the keys named."""
    if change == "set":
        return dict(tags)
    if change == "update":
        return {**current, **tags}
    return {k: v for k, v in current.items() if k not in tags}
