"""JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.

All functions return a new document and never modify their arguments' nested
values in place (the store keeps stored objects immutable and shares them).
"""

import copy
from collections.abc import Mapping
from typing import Any

from testbed.kube.errors import ApiError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class PatchError(ValueError):
    """A patch that cannot be applied to this document (answered as 422)."""


def _rejected(reason: str) -> ApiError:
    return ApiError(
        422,
        f"the server rejected our request due to an error in our request: {reason}",
        details={"causes": [{"reason": "UnexpectedServerResponse", "message": reason}]},
    )


# --- JSON patch ----------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], segment: str, *, for_add: bool) -> int:
    if for_add and segment == "-":
        return len(container)
    if not segment.isdigit() or (len(segment) > 1 and segment.startswith("0")):
        raise PatchError(f"invalid array index {segment!r}")
    index = int(segment)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of bounds")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"missing path element {token!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False)]
        else:
            raise PatchError(f"cannot descend into a scalar at {token!r}")
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False)]
    raise PatchError(f"path {path!r} does not exist")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], for_add=True), value)
    else:
        raise PatchError(f"cannot add to a scalar at {path!r}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise PatchError(f"unable to remove nonexistent key: {tokens[-1]}")
        return doc, parent.pop(tokens[-1])
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, tokens[-1], for_add=False))
    raise PatchError(f"cannot remove from a scalar at {path!r}")


def _apply_op(doc: Any, op: Mapping[str, Any]) -> Any:
    kind, path = op.get("op"), op.get("path")
    if not isinstance(path, str):
        raise PatchError(f"operation {kind!r} needs a string 'path'")
    if kind in ("add", "replace", "test") and "value" not in op:
        raise PatchError(f"operation {kind!r} needs a 'value'")
    if kind == "add":
        return _add(doc, path, copy.deepcopy(op["value"]))
    if kind == "remove":
        return _remove(doc, path)[0]
    if kind == "replace":
        _get(doc, path)
        doc, _ = _remove(doc, path) if _pointer(path) else (doc, None)
        return _add(doc, path, copy.deepcopy(op["value"]))
    if kind in ("move", "copy"):
        source = op.get("from")
        if not isinstance(source, str):
            raise PatchError(f"operation {kind!r} needs a string 'from'")
        if kind == "move":
            doc, value = _remove(doc, source)
        else:
            value = copy.deepcopy(_get(doc, source))
        return _add(doc, path, value)
    if kind == "test":
        if _get(doc, path) != op["value"]:
            raise PatchError(f"testing value {path} failed: test failed")
        return doc
    raise PatchError(f"unknown JSON patch operation {kind!r}")


def json_patch(doc: dict[str, Any], operations: Any) -> dict[str, Any]:
    """Apply RFC 6902 operations; `doc` must be a private copy (it is changed in place)."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a JSON array of operations")
    result: Any = doc
    try:
        for op in operations:
            if not isinstance(op, dict):
                raise PatchError("each JSON patch operation must be an object")
            result = _apply_op(result, op)
    except PatchError as err:
        raise _rejected(str(err)) from err
    if not isinstance(result, dict):
        raise _rejected("the patched document is not an object")
    return result


# --- JSON merge patch ----------------------------------------------------------------------


def merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- strategic merge patch -----------------------------------------------------------------

_DIRECTIVE = "$patch"
_RETAIN = "$retainKeys"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"


class StrategicMerger:
    """Strategic merge with list rules given as dotted path -> merge key ("" = primitive set)."""

    def __init__(self, merge_lists: Mapping[str, str]) -> None:
        self._rules = dict(merge_lists)

    def apply(self, doc: dict[str, Any], patch: Any) -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise bad_request("strategic merge patch must be a JSON object")
        try:
            result = self._merge_map(doc, patch, "")
        except PatchError as err:
            raise _rejected(str(err)) from err
        return result if isinstance(result, dict) else {}

    def _merge_map(self, doc: Any, patch: dict[str, Any], path: str) -> Any:
        directive = patch.get(_DIRECTIVE)
        if directive == "delete":
            return None
        base = dict(doc) if isinstance(doc, dict) and directive != "replace" else {}
        retain = patch.get(_RETAIN)
        for key, value in patch.items():
            if key in (_DIRECTIVE, _RETAIN):
                continue
            if key.startswith(_DELETE_PRIMITIVE):
                self._delete_primitives(base, key[len(_DELETE_PRIMITIVE) :], value)
            elif key.startswith(_ORDER):
                continue
            elif value is None:
                base.pop(key, None)
            else:
                child = f"{path}.{key}" if path else key
                merged = self._merge_value(base.get(key), value, child)
                if merged is None:
                    base.pop(key, None)
                else:
                    base[key] = merged
        if isinstance(retain, list):
            base = {k: v for k, v in base.items() if k in retain}
        self._order_lists(base, patch)
        return base

    def _merge_value(self, current: Any, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return self._merge_map(current, value, path)
        if isinstance(value, list) and path in self._rules:
            return self._merge_list(current if isinstance(current, list) else [], value, path)
        return copy.deepcopy(value)

    def _merge_list(self, current: list[Any], patch: list[Any], path: str) -> list[Any]:
        key = self._rules[path]
        if any(isinstance(i, dict) and i.get(_DIRECTIVE) == "replace" for i in patch):
            return [
                copy.deepcopy(i) for i in patch if not isinstance(i, dict) or _DIRECTIVE not in i
            ]
        if key == "":
            merged = list(current)
            merged.extend(item for item in patch if item not in merged)
            return merged
        return self._merge_keyed(current, patch, key, path)

    def _merge_keyed(self, current: list[Any], patch: list[Any], key: str, path: str) -> list[Any]:
        result = list(current)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise PatchError(f"map in the list {path} does not contain the merge key {key!r}")
            position = next(
                (
                    i
                    for i, e in enumerate(result)
                    if isinstance(e, dict) and e.get(key) == item[key]
                ),
                None,
            )
            if item.get(_DIRECTIVE) == "delete":
                if position is not None:
                    result.pop(position)
            elif position is None:
                result.append(self._merge_map({}, item, path))
            else:
                result[position] = self._merge_map(result[position], item, path)
        return result

    @staticmethod
    def _delete_primitives(base: dict[str, Any], field: str, values: Any) -> None:
        current = base.get(field)
        if isinstance(current, list) and isinstance(values, list):
            remaining = [v for v in current if v not in values]
            if remaining:
                base[field] = remaining
            else:
                base.pop(field, None)

    def _order_lists(self, base: dict[str, Any], patch: dict[str, Any]) -> None:
        for key, order in patch.items():
            if not key.startswith(_ORDER) or not isinstance(order, list):
                continue
            field = key[len(_ORDER) :]
            items = base.get(field)
            if isinstance(items, list):
                base[field] = _ordered(items, order)


def _ordered(items: list[Any], order: list[Any]) -> list[Any]:
    def identity(item: Any, like: Any) -> bool:
        if isinstance(like, dict) and isinstance(item, dict):
            return all(item.get(k) == v for k, v in like.items())
        return bool(item == like)

    placed: list[Any] = []
    for like in order:
        placed.extend(i for i in items if identity(i, like) and not any(i is p for p in placed))
    placed.extend(i for i in items if not any(i is p for p in placed))
    return placed
