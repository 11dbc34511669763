"""The ObjectMeta rules every type shares, as the apiserver's generic registry
applies them (rest.BeforeCreate, rest.BeforeUpdate, the update and delete
preconditions): server-set fields on create, system fields kept on update,
name and namespace checks against the URL, uid and resourceVersion preconditions.
"""

import random
import time
import uuid
from typing import Any

from testbed.kube import errors, strategy
from testbed.kube.errors import ApiError
from testbed.kube.resources import ResourceType, stored_type

JSON = dict[str, Any]

#: Names generateName appends: the apiserver's 5 characters from this alphabet.
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _generated_name(prefix: str) -> str:
    return prefix + "".join(random.choices(_GENERATE_ALPHABET, k=5))  # noqa: S311


def prepare_meta(rt: ResourceType, namespace: str, obj: JSON) -> JSON:
    if not isinstance(obj.get("metadata"), dict):
        obj["metadata"] = {}
    meta: JSON = obj["metadata"]
    body_ns = meta.get("namespace")
    if rt.namespaced and body_ns and body_ns != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = _generated_name(meta["generateName"])
    if not meta.get("name"):
        raise errors.invalid(
            rt.kind,
            rt.group,
            "",
            [
                (
                    "metadata.name",
                    strategy.REQUIRED,
                    "Required value: name or generateName is required",
                )
            ],
        )
    shape = stored_type(rt)
    obj["kind"], obj["apiVersion"] = shape.kind, shape.api_version
    if rt.namespaced:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    if meta.get("resourceVersion"):
        raise ApiError(
            500,
            "Internal error occurred: resourceVersion should not be set on objects to be created",
        )
    for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
        meta.pop(field, None)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now_rfc3339()
    if rt.sets_generation:  # otherwise as sent: rest.BeforeCreate does not touch it
        meta["generation"] = 1
    return meta


def check_body_identity(rt: ResourceType, namespace: str, name: str, obj: JSON) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise errors.bad_request("the object must be a JSON object with metadata")
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
        )
    if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )


def check_precondition(rt: ResourceType, new: JSON, old: JSON) -> None:
    wanted = new.get("metadata", {}).get("resourceVersion")
    if wanted and wanted != old["metadata"]["resourceVersion"]:
        raise errors.conflict(rt.plural, rt.group, old["metadata"]["name"], errors.STALE_OBJECT)


_SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "name",
    "namespace",
    "resourceVersion",
)


def keep_system_meta(rt: ResourceType, namespace: str, new: JSON, old: JSON) -> None:
    meta = new["metadata"]
    for field in _SYSTEM_META:
        if field in old["metadata"]:
            meta[field] = old["metadata"][field]
        else:
            meta.pop(field, None)
    shape = stored_type(rt)
    new["kind"], new["apiVersion"] = shape.kind, shape.api_version


def spec_changed(new: JSON, old: JSON) -> bool:
    keys = (set(new) | set(old)) - {"metadata", "status", "kind", "apiVersion"}
    return any(new.get(k) != old.get(k) for k in keys)


def check_delete_preconditions(
    rt: ResourceType, obj: JSON, *, uid: str | None, resource_version: str | None
) -> None:
    meta = obj["metadata"]
    name = meta["name"]
    if uid is not None and uid != meta["uid"]:
        raise errors.conflict(
            rt.plural,
            rt.group,
            name,
            f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta['uid']}",
        )
    if resource_version is not None and resource_version != meta["resourceVersion"]:
        raise errors.conflict(
            rt.plural,
            rt.group,
            name,
            "Precondition failed: ResourceVersion in precondition: "
            f"{resource_version}, ResourceVersion in object meta: "
            f"{meta['resourceVersion']}",
        )
