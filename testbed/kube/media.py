"""Request bodies: which media types the server decodes, and decoding them.

The real apiserver negotiates the decoder of a create, update or delete body in
k8s.io/apiserver `pkg/endpoints/handlers/negotiation/negotiate.go`
(`NegotiateInputSerializerForMediaType`): an empty Content-Type means the first
supported type (JSON); otherwise the type, parsed as by Go's `mime.ParseMediaType`
(lower-cased, parameters such as `charset` dropped), must equal a supported one.
Anything else is `errUnsupportedMediaType` (negotiation/errors.go): HTTP 415,
reason `UnsupportedMediaType`, message "the body of the request was in an unknown
format - accepted media types include: <types, comma-separated>".

The real server also decodes YAML and protobuf; this test server decodes JSON only,
so it names only JSON. client-go sends protobuf for built-in types unless told
otherwise (the kubernetes-csi sidecars: `--kube-api-content-type=application/json`
where they have the flag), and gets this 415 instead of a wrong answer.
"""

import json
from typing import Any, Final

from testbed.kube import errors
from testbed.kube.errors import ApiError

#: The one media type this server decodes request bodies from.
JSON_MEDIA: Final = "application/json"


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header: lower-cased, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_body_type(content_type: str | None, *, accepted: tuple[str, ...] = (JSON_MEDIA,)) -> None:
    """415 `UnsupportedMediaType` unless the body's type is one of `accepted` (empty: the first)."""
    if media_type(content_type) in ("", *accepted):
        return
    raise ApiError(
        415,
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def loads(body: bytes) -> Any:
    """JSON from a request body; every malformed body is a ValueError (never another type):
    bytes that are not UTF-8, bad syntax, and nesting deeper than the parser goes."""
    try:
        return json.loads(body)
    except RecursionError as err:
        raise ValueError("exceeded max depth") from err


def object_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The object of a create or update body (create.go/update.go: the negotiated decoder;
    a decode error is transformDecodeError's 400 BadRequest)."""
    check_body_type(content_type)
    try:
        obj = loads(body or b"null")
    except ValueError as err:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {err}") from err
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON object")
    return obj
