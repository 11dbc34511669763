"""Invalid Heketi settings are refused with a message naming the problem."""

import pytest

from provisioner.core.storageclass import parse_rest_url
from provisioner.csi.heketi_access import HeketiDefaults
from provisioner.errors import InvalidArgument
from provisioner.heketi import HeketiConfig
from provisioner.heketi.config import url_problem


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "heketi:8080"}, "must look like http://host:port"),
        ({"url": "ftp://heketi:8080"}, "must look like http://host:port"),
        ({"url": "http://heketi:8080/api"}, "must not have a path"),
        ({"url": "http://u:p@heketi:8080"}, "must not have a path, query or credentials"),
        ({"url": "http://[heketi:8080"}, "is malformed"),
        ({"user": ""}, "user must not be empty"),
        ({"request_timeout": 0}, "request_timeout must be a positive number"),
        ({"operation_deadline": float("inf")}, "operation_deadline must be a positive number"),
        ({"max_inflight": 0}, "max_inflight and retry_attempts must be at least 1"),
        ({"poll_factor": 0.5}, "poll_factor must be at least 1"),
    ],
    ids=[
        "no-scheme",
        "wrong-scheme",
        "path",
        "credentials",
        "unclosed-ipv6-bracket",
        "empty-user",
        "zero-timeout",
        "infinite-deadline",
        "zero-inflight",
        "shrinking-poll",
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"url": "http://heketi:8080", **changes}
    with pytest.raises(InvalidArgument, match=message):
        HeketiConfig(**settings)  # type: ignore[arg-type]


def test_trailing_slash_is_accepted_and_dropped() -> None:
    assert HeketiConfig(url="https://heketi:8080/").base_url == "https://heketi:8080"


@pytest.mark.parametrize(
    "url",
    [
        "http://admin:s3cret@heketi:8080",
        "ftp://admin:s3cret@heketi:8080",
        "admin:s3cret@heketi:8080",
        "http://admin:s3/cret@heketi:8080",
        "http://admin:s3cret@heketi:8080]",
    ],
    ids=["http", "wrong-scheme", "no-scheme", "slash-in-password", "malformed"],
)
def test_a_refused_url_never_shows_its_password(url: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        HeketiConfig(url=url)
    assert "s3" not in str(refused.value)
    assert "***@heketi:8080" in str(refused.value)


def test_repr_never_shows_the_key() -> None:
    assert "s3cret" not in repr(HeketiConfig(url="http://h:1", key="s3cret"))


@pytest.mark.parametrize(
    ("auth_enabled", "key", "sends"), [(True, "k", True), (True, None, False), (False, "k", False)]
)
def test_token_is_sent_only_with_auth_enabled_and_a_key(
    auth_enabled: bool, key: str | None, sends: bool
) -> None:
    config = HeketiConfig(url="http://h:1", key=key, auth_enabled=auth_enabled)
    assert config.sends_token is sends


BAD_URLS = [
    pytest.param("heketi:8080", id="no-scheme"),
    pytest.param("ftp://heketi:8080", id="wrong-scheme"),
    pytest.param("http://heketi:8080/api", id="path"),
    pytest.param("http://heketi:8080?x=1", id="query"),
    pytest.param("http://heketi:8080#top", id="fragment"),
    pytest.param("http://heketi:99999", id="bad-port"),
    pytest.param("http://admin:s3cret@heketi:8080", id="credentials"),
    pytest.param("http://[heketi:8080", id="unclosed-ipv6-bracket"),
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_every_place_that_takes_a_heketi_url_refuses_the_same_ones(url: str) -> None:
    assert url_problem(url) is not None
    with pytest.raises(InvalidArgument):
        HeketiConfig(url=url)
    with pytest.raises(InvalidArgument):
        parse_rest_url(url)
    with pytest.raises(InvalidArgument):
        HeketiDefaults(url=url)


@pytest.mark.parametrize(
    "url", ["http://heketi:8080", "https://heketi.storage.svc:8443/", "http://[::1]:8080"]
)
def test_every_place_that_takes_a_heketi_url_accepts_the_same_ones(url: str) -> None:
    assert url_problem(url) is None
    assert HeketiConfig(url=url).base_url == parse_rest_url(url) == HeketiDefaults(url=url).url
