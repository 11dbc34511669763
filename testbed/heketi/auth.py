"""Heketi's JWT checks, in Heketi's order and with its wording (middleware/jwt.go
plus the role check of apps/glusterfs/app.go), for the test server.

Heketi parses the token with dgrijalva/jwt-go: claim checks (exp, iat with a
120 s leeway, nbf) run first, then the signature; the last failure wins the
message, so a wrong key always reads "signature is invalid".
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

#: Heketi's default HEKETI_JWT_IAT_LEEWAY_SECONDS.
IAT_LEEWAY_SECONDS = 120

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


@dataclass(frozen=True)
class AuthFailure:
    status: int
    message: str


def go_duration(seconds: int) -> str:
    """Format whole seconds like Go's time.Duration.String(): 5s, 1m30s, 2h0m0s."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s"


def qsh(method: str, path: str) -> str:
    return hashlib.sha256(f"{method}&{path}".encode()).hexdigest()


def check_request(
    authorization: str | None,
    *,
    method: str,
    path: str,
    admin_key: str | None,
    user_key: str | None,
    now: float | None = None,
) -> AuthFailure | None:
    """None when the request may proceed, else the answer Heketi would give."""
    header = (authorization or "").strip(" \t")  # Go's textproto trims header values
    if not header:
        return AuthFailure(401, "Required authorization token not found")
    parts = header.split(" ")
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return AuthFailure(400, "Authorization header format must be Bearer {token}")
    claims_or_failure = _verify_token(
        parts[1], admin_key, user_key, int(time.time() if now is None else now)
    )
    if isinstance(claims_or_failure, AuthFailure):
        return claims_or_failure
    claims = claims_or_failure
    if claims.get("qsh") != qsh(method, path):
        return AuthFailure(401, "Invalid qsh claim in token")
    if claims.get("iss") == "user" and path != "/volumes":
        return AuthFailure(401, "Administrator access required")
    return None


def _verify_token(
    token: str, admin_key: str | None, user_key: str | None, now: int
) -> dict[str, Any] | AuthFailure:
    segments = token.split(".")
    if len(segments) != 3:
        return _invalid("token contains an invalid number of segments")
    try:
        header = json.loads(_b64(segments[0]))
        claims = json.loads(_b64(segments[1]))
        signature = _b64(segments[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return _invalid("illegal base64 data or JSON in token")
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return _invalid("json: cannot unmarshal token into Go value")
    digest = _HASHES.get(str(header.get("alg")))
    if digest is None:
        return _invalid(f"Unexpected signing method: {header.get('alg')}")
    key = _key_for(claims.get("iss"), admin_key, user_key)
    if isinstance(key, AuthFailure):
        return key
    inner = _claims_error(claims, now)
    signed = f"{segments[0]}.{segments[1]}".encode()
    expected = hmac.new(key, signed, digest).digest()
    if not hmac.compare_digest(expected, signature):
        inner = "signature is invalid"
    return _invalid(inner) if inner else claims


def _key_for(issuer: Any, admin_key: str | None, user_key: str | None) -> bytes | AuthFailure:
    if not issuer:
        return _invalid("Token missing iss claim")
    if issuer not in ("admin", "user"):
        return _invalid("Unknown user")
    key = admin_key if issuer == "admin" else user_key
    # No key configured for this role: nothing can verify, like an unknown secret.
    return key.encode() if key is not None else hashlib.sha256(str(time.time()).encode()).digest()


def _claims_error(claims: dict[str, Any], now: int) -> str | None:
    inner = None
    exp = _number(claims.get("exp"))
    if exp == 0 or now > exp:
        inner = f"Token is expired by {go_duration(int(now - exp))}"
    iat = _number(claims.get("iat"))
    if now < iat - IAT_LEEWAY_SECONDS:
        inner = "Token used before issued"
    nbf = _number(claims.get("nbf"))
    if nbf and now < nbf:
        inner = "token is not valid yet"
    return inner


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _invalid(inner: str) -> AuthFailure:
    message = f"Invalid JWT token: {inner}"
    if inner == "signature is invalid":
        message += " (client and server secrets may not match)"
    if "used before issued" in inner:
        message += " (client and server clocks may differ)"
    return AuthFailure(401, message)


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
