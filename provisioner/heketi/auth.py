"""Heketi's JWT scheme: HS256 tokens with `iss`, `iat`, `exp` and `qsh`.

`qsh` is the hex SHA-256 of ``METHOD&PATH`` (path only, no query string),
which binds each token to one request; so every request, poll and redirect
target gets a fresh token.
"""

import hashlib
import json
import time

from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_encode

#: Token lifetime. Heketi only needs it valid for one request; a few minutes
#: absorbs moderate clock skew in the server's favour.
TOKEN_LIFETIME_SECONDS = 300


def query_string_hash(method: str, path: str) -> str:
    """Heketi's `qsh` claim for a request."""
    claim = f"{method.upper()}&{path}"
    return hashlib.sha256(claim.encode()).hexdigest()


class TokenSigner:
    """Mints the tokens of one Heketi user. The key is prepared once (PyJWT checks a
    key's format on every preparation: a third of a token's cost); `repr` omits it."""

    __slots__ = ("_key", "_user")

    def __init__(self, *, user: str, key: str) -> None:
        self._user = user
        self._key = _HS256.prepare_key(key)

    def __repr__(self) -> str:
        return f"TokenSigner(user={self._user!r})"

    def token(self, method: str, path: str, *, now: float | None = None) -> str:
        """A signed token for exactly one request."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self._user,
            "iat": issued,
            "exp": issued + TOKEN_LIFETIME_SECONDS,
            "qsh": query_string_hash(method, path),
        }
        return _sign_hs256(claims, self._key)


_HS256 = HMACAlgorithm(HMACAlgorithm.SHA256)
_HEADER = base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())


def _sign_hs256(claims: dict[str, object], key: bytes) -> str:
    """Sign with PyJWT's HMAC primitives.

    `jwt.encode` would warn on every call about keys shorter than 32 bytes;
    Heketi keys are chosen by the Heketi administrator and must be used as
    they are, so the token is assembled here instead.
    """
    payload = base64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = _HEADER + b"." + payload
    signature = _HS256.sign(signing_input, key)
    return (signing_input + b"." + base64url_encode(signature)).decode()
