"""Unknown-field handling: the apiserver decodes built-in types into Go structs.

Fields a type does not have are dropped (`fieldValidation=Warn`, the default,
answers with a `Warning` header; `Ignore` drops silently) or rejected
(`fieldValidation=Strict` → 400). The field lists come from the models of the
pinned `kubernetes` client, generated from the same OpenAPI document.
"""

import functools
import types
import typing
from dataclasses import dataclass
from typing import Any

from testbed.kube.errors import bad_request
from testbed.kube.resources import ResourceType

JSON = dict[str, Any]


@dataclass(frozen=True)
class Model:
    cls: type


@dataclass(frozen=True)
class ListOf:
    item: "Node"


@dataclass(frozen=True)
class MapOf:
    value: "Node"


Node = Model | ListOf | MapOf | None  # None: a scalar or free-form value, never pruned

#: Model class of each (group, kind) in kubernetes.client.models.
_MODEL_NAMES = {
    ("", "Event"): "CoreV1Event",
    ("events.k8s.io", "Event"): "EventsV1Event",
}
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")


def _node(annotation: Any) -> Node:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _node(args[0])
    if origin in (typing.Union, types.UnionType):
        nodes = [_node(a) for a in args if a is not type(None)]
        return nodes[0] if len(nodes) == 1 else None
    if origin is list:
        return ListOf(_node(args[0]))
    if origin is dict:
        return MapOf(_node(args[1]))
    if isinstance(annotation, type) and hasattr(annotation, "attribute_map"):
        return Model(annotation)
    return None


@functools.cache
def fields_of(cls: type) -> dict[str, Node]:
    """JSON field name -> node, for one generated model class."""
    attribute_map: dict[str, str] = cls.attribute_map  # type: ignore[attr-defined]
    model_fields: dict[str, Any] = cls.model_fields  # type: ignore[attr-defined]
    return {
        json_name: _node(model_fields[python_name].annotation)
        for python_name, json_name in attribute_map.items()
        if python_name in model_fields
    }


@functools.cache
def _model(group: str, kind: str) -> Model | None:
    from kubernetes.client import models

    name = _MODEL_NAMES.get((group, kind), f"V1{kind}")
    cls = getattr(models, name, None)
    return Model(cls) if cls is not None else None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), "value")


def _check_shape(value: Any, node: Node, path: str) -> None:
    """A structured field holding the wrong JSON type is a decode error, as in the apiserver."""
    wanted = dict if isinstance(node, Model | MapOf) else list if isinstance(node, ListOf) else None
    if wanted is None or value is None or isinstance(value, wanted):
        return
    expected = "an array" if wanted is list else "an object"
    raise bad_request(
        f"cannot decode the object: {path.rstrip('.') or 'the body'}: "
        f"expected {expected}, got {_json_type(value)}"
    )


def prune(value: Any, node: Node, path: str, unknown: list[str]) -> None:
    """Remove (in place) what `node` does not describe; record each removed path.

    Raises a 400 ApiError where a structured field holds the wrong JSON type.
    """
    _check_shape(value, node, path)
    if isinstance(node, Model) and isinstance(value, dict):
        known = fields_of(node.cls)
        for key in list(value):
            if key not in known:
                unknown.append(f"{path}{key}")
                del value[key]
            else:
                prune(value[key], known[key], f"{path}{key}.", unknown)
    elif isinstance(node, ListOf) and isinstance(value, list):
        for index, item in enumerate(value):
            prune(item, node.item, f"{path.rstrip('.')}[{index}].", unknown)
    elif isinstance(node, MapOf) and isinstance(value, dict):
        for key, item in value.items():
            prune(item, node.value, f"{path}{key}.", unknown)


def drop_unknown_fields(rt: ResourceType, obj: JSON, mode: str) -> list[str]:
    """Apply `fieldValidation` to `obj` (a private copy); returns the warnings to send."""
    model = _model(rt.group, rt.kind)
    if model is None or mode not in FIELD_VALIDATION:
        if mode not in FIELD_VALIDATION:
            raise bad_request(
                f'fieldValidation: Unsupported value: "{mode}": supported '
                'values: "Ignore", "Strict", "Warn"'
            )
        return []
    unknown: list[str] = []
    prune(obj, model, "", unknown)
    messages = [f'unknown field "{field}"' for field in unknown]
    if unknown and mode == "Strict":
        raise bad_request("strict decoding error: " + ", ".join(messages))
    return messages if mode == "Warn" else []
