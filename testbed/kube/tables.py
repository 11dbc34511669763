"""Server-side printing (`meta.k8s.io/v1` Table), which `kubectl get` asks for."""

import calendar
import time
from collections.abc import Callable, Sequence
from typing import Any

JSON = dict[str, Any]
Cell = str | int
Row = Callable[[JSON], list[Cell]]

_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}
_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


def human_age(timestamp: str | None, now: float | None = None) -> str:
    """Age the way kubectl prints it (duration.HumanDuration)."""
    if not timestamp:
        return "<unknown>"
    try:
        created = calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<invalid>"
    seconds = max(0, int((now if now is not None else time.time()) - created))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d" if days < 365 * 2 else f"{days // 365}y"


def _meta(obj: JSON) -> JSON:
    meta: JSON = obj.get("metadata") or {}
    return meta


def _age(obj: JSON) -> str:
    return human_age(_meta(obj).get("creationTimestamp"))


def _modes(modes: Sequence[str] | None) -> str:
    return ",".join(_MODES.get(m, m) for m in modes or ())


def _pvc_row(obj: JSON) -> list[Cell]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    phase = "Terminating" if _meta(obj).get("deletionTimestamp") else status.get("phase", "")
    capacity = (status.get("capacity") or {}).get("storage", "")
    return [
        _meta(obj).get("name", ""),
        phase,
        spec.get("volumeName", ""),
        capacity,
        _modes(status.get("accessModes")),
        spec.get("storageClassName") or "<unset>",
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(obj),
        spec.get("volumeMode", ""),
    ]


def _pv_row(obj: JSON) -> list[Cell]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    phase = "Terminating" if _meta(obj).get("deletionTimestamp") else status.get("phase", "")
    return [
        _meta(obj).get("name", ""),
        (spec.get("capacity") or {}).get("storage", ""),
        _modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        phase,
        claim,
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or "<unset>",
        status.get("reason", ""),
        _age(obj),
        spec.get("volumeMode", ""),
    ]


def _sc_row(obj: JSON) -> list[Cell]:
    name = _meta(obj).get("name", "")
    if (_meta(obj).get("annotations") or {}).get(_DEFAULT_CLASS) == "true":
        name += " (default)"
    return [
        name,
        obj.get("provisioner", ""),
        obj.get("reclaimPolicy", ""),
        obj.get("volumeBindingMode", ""),
        str(bool(obj.get("allowVolumeExpansion"))).lower(),
        _age(obj),
    ]


def _namespace_row(obj: JSON) -> list[Cell]:
    return [_meta(obj).get("name", ""), (obj.get("status") or {}).get("phase", ""), _age(obj)]


def _secret_row(obj: JSON) -> list[Cell]:
    return [_meta(obj).get("name", ""), obj.get("type", ""), len(obj.get("data") or {}), _age(obj)]


def _event_row(obj: JSON) -> list[Cell]:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    seen = obj.get("lastTimestamp") or obj.get("eventTime") or _meta(obj).get("creationTimestamp")
    return [
        human_age(seen[:19] + "Z" if seen else None),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message") or obj.get("note") or "",
    ]


def _lease_row(obj: JSON) -> list[Cell]:
    return [
        _meta(obj).get("name", ""),
        (obj.get("spec") or {}).get("holderIdentity", ""),
        _age(obj),
    ]


def _default_row(obj: JSON) -> list[Cell]:
    return [_meta(obj).get("name", ""), _meta(obj).get("creationTimestamp", "")]


def _columns(*specs: tuple[str, str] | tuple[str, str, int]) -> list[JSON]:
    out = []
    for spec in specs:
        name, kind = spec[0], spec[1]
        priority = spec[2] if len(spec) == 3 else 0
        column: JSON = {
            "name": name,
            "type": kind,
            "format": "",
            "description": name,
            "priority": priority,
        }
        if name == "Name":
            column["format"] = "name"
        out.append(column)
    return out


_S, _I = "string", "integer"
TABLES: dict[str, tuple[list[JSON], Row]] = {
    "persistentvolumeclaims": (
        _columns(
            ("Name", _S),
            ("Status", _S),
            ("Volume", _S),
            ("Capacity", _S),
            ("Access Modes", _S),
            ("StorageClass", _S),
            ("VolumeAttributesClass", _S),
            ("Age", _S),
            ("VolumeMode", _S, 1),
        ),
        _pvc_row,
    ),
    "persistentvolumes": (
        _columns(
            ("Name", _S),
            ("Capacity", _S),
            ("Access Modes", _S),
            ("Reclaim Policy", _S),
            ("Status", _S),
            ("Claim", _S),
            ("StorageClass", _S),
            ("VolumeAttributesClass", _S),
            ("Reason", _S),
            ("Age", _S),
            ("VolumeMode", _S, 1),
        ),
        _pv_row,
    ),
    "storageclasses": (
        _columns(
            ("Name", _S),
            ("Provisioner", _S),
            ("ReclaimPolicy", _S),
            ("VolumeBindingMode", _S),
            ("AllowVolumeExpansion", _S),
            ("Age", _S),
        ),
        _sc_row,
    ),
    "namespaces": (_columns(("Name", _S), ("Status", _S), ("Age", _S)), _namespace_row),
    "secrets": (_columns(("Name", _S), ("Type", _S), ("Data", _I), ("Age", _S)), _secret_row),
    "events": (
        _columns(("Last Seen", _S), ("Type", _S), ("Reason", _S), ("Object", _S), ("Message", _S)),
        _event_row,
    ),
    "leases": (_columns(("Name", _S), ("Holder", _S), ("Age", _S)), _lease_row),
}
_DEFAULT = (_columns(("Name", _S), ("Created At", "date")), _default_row)


def table(bucket: str, objects: Sequence[JSON], list_meta: JSON) -> JSON:
    """A Table of `objects`; each row carries the object's metadata (PartialObjectMetadata)."""
    columns, row = TABLES.get(bucket, _DEFAULT)
    rows = [
        {
            "cells": row(obj),
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": _meta(obj),
            },
        }
        for obj in objects
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    }
