"""Tokens carry exactly Heketi's claims and are bound to one request."""

import hashlib
import warnings

import jwt

from provisioner.heketi.auth import (
    TOKEN_LIFETIME_SECONDS,
    TokenSigner,
    query_string_hash,
)


def decode(token: str, key: str) -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short test keys
        claims: dict[str, object] = jwt.decode(
            token, key, algorithms=["HS256"], options={"verify_exp": False}
        )
    return claims


def test_qsh_is_sha256_hex_of_method_and_path() -> None:
    expected = hashlib.sha256(b"POST&/volumes").hexdigest()
    assert query_string_hash("post", "/volumes") == expected


def test_token_has_issuer_times_and_request_hash() -> None:
    token = TokenSigner(user="admin", key="k").token("GET", "/queue/ab", now=1000)
    assert decode(token, "k") == {
        "iss": "admin",
        "iat": 1000,
        "exp": 1000 + TOKEN_LIFETIME_SECONDS,
        "qsh": query_string_hash("GET", "/queue/ab"),
    }


def test_token_is_signed_hs256_with_the_users_key() -> None:
    token = TokenSigner(user="user", key="secret").token("GET", "/volumes")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert decode(token, "secret")["iss"] == "user"


def test_each_request_path_gets_its_own_token() -> None:
    first = TokenSigner(user="admin", key="k").token("GET", "/a", now=5)
    second = TokenSigner(user="admin", key="k").token("GET", "/b", now=5)
    assert first != second


def test_one_signer_mints_the_same_token_for_the_same_request_and_instant() -> None:
    signer = TokenSigner(user="admin", key="k")
    assert signer.token("GET", "/queue/ab", now=1000) == TokenSigner(user="admin", key="k").token(
        "GET", "/queue/ab", now=1000
    )


def test_signer_repr_names_the_user_but_never_the_key() -> None:
    text = repr(TokenSigner(user="admin", key="very-secret-heketi-key"))
    assert "admin" in text
    assert "very-secret-heketi-key" not in text
