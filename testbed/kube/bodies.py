"""Request bodies the verbs decode besides objects: patch documents by their
Content-Type (patch.go PatchResource) and DeleteOptions (delete.go), with the
`dryRun` query parameter they share.
"""

from collections.abc import Callable
from typing import Any

from testbed.kube import errors, events, media, patch
from testbed.kube.errors import ApiError
from testbed.kube.resources import ResourceType
from testbed.kube.store import DeleteOptions

JSON = dict[str, Any]


def dry_run(query: dict[str, str]) -> bool:
    value = query.get("dryRun", "")
    if value not in ("", "All"):
        raise errors.bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return value == "All"


def delete_options(body: bytes, query: dict[str, str], content_type: str | None) -> DeleteOptions:
    """DeleteOptions from a DELETE body (delete.go DeleteResource/DeleteCollection: a body is
    negotiated like any other, and a decode error is a 400 BadRequest) or the query."""
    options: Any = {}
    if body:
        media.check_body_type(content_type)
        try:
            options = media.loads(body)
        except ValueError as err:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {err}") from err
    if not isinstance(options, dict):
        raise errors.bad_request("the request body must be a DeleteOptions object")
    pre = options.get("preconditions") or {}
    dry = dry_run(query) or "All" in (options.get("dryRun") or [])
    return DeleteOptions(
        uid=pre.get("uid"), resource_version=pre.get("resourceVersion"), dry_run=dry
    )


def patcher(rt: ResourceType, content_type: str, body: bytes) -> Callable[[JSON], JSON]:
    # patch.go PatchResource: the Content-Type is checked against the patch types first.
    media_type = media.media_type(content_type)
    if media_type not in (patch.JSON_PATCH, patch.MERGE_PATCH, patch.STRATEGIC_MERGE_PATCH):
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media "
            f"types include: {patch.JSON_PATCH}, {patch.MERGE_PATCH}, "
            f"{patch.STRATEGIC_MERGE_PATCH} (server-side apply, "
            f"{patch.APPLY_PATCH}, is not implemented by this test server)",
        )
    try:
        document = media.loads(body or b"null")
    except ValueError as err:
        raise errors.bad_request(f"error decoding patch: {err}") from err
    if events.is_events_v1(rt) and media_type != patch.JSON_PATCH:
        document = _events_patch_to_core(document)
    if media_type == patch.JSON_PATCH:
        return (
            _events_json_patch(document)
            if events.is_events_v1(rt)
            else (lambda doc: patch.json_patch(doc, document))
        )
    if media_type == patch.MERGE_PATCH:
        return lambda doc: _merged(doc, document)
    merger = patch.StrategicMerger(dict(rt.merge_lists))
    return lambda doc: merger.apply(doc, document)


def _merged(doc: JSON, document: Any) -> JSON:
    if not isinstance(document, dict):
        raise errors.bad_request("a JSON merge patch for an object must be a JSON object")
    result = patch.merge_patch(doc, document)
    assert isinstance(result, dict)
    return result


def _events_patch_to_core(document: Any) -> Any:
    if not isinstance(document, dict):
        return document
    converted = events.to_core({**document, "kind": "Event"})
    converted.pop("kind", None)
    converted.pop("apiVersion", None)
    return converted


def _events_json_patch(document: Any) -> Callable[[JSON], JSON]:
    def apply(doc: JSON) -> JSON:
        return events.to_core(patch.json_patch(events.to_events_v1(doc), document))

    return apply
