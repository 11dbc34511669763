"""Which Heketi, user, key and CA each CSI Controller call uses."""

import pytest

from provisioner.core.storageclass import parse_parameters
from provisioner.csi.heketi_access import (
    HeketiDefaults,
    heketi_for_capacity,
    heketi_for_class,
    heketi_for_volume,
    split_parameters,
    with_url,
)
from provisioner.errors import InvalidArgument

OWN = "http://heketi.own:8080"
OTHER = "http://heketi.other:8080"
DEFAULTS = HeketiDefaults(url=OWN, user="admin", key="own-key", ca_file="/ca.pem")


def test_volume_calls_use_the_secret_url_user_and_key() -> None:
    config = heketi_for_volume({"resturl": OTHER, "restuser": "user", "key": "k"}, DEFAULTS)
    assert (config.url, config.user, config.key, config.ca_bundle) == (OTHER, "user", "k", None)


def test_volume_calls_fall_back_to_the_plugins_own_heketi_and_key() -> None:
    config = heketi_for_volume({}, DEFAULTS)
    assert (config.url, config.user, config.key, config.ca_bundle) == (
        OWN,
        "admin",
        "own-key",
        "/ca.pem",
    )
    assert config.sends_token


def test_the_plugins_key_is_never_sent_to_another_heketi() -> None:
    config = heketi_for_volume({"resturl": OTHER}, DEFAULTS)
    assert (config.key, config.sends_token) == (None, False)


def test_secret_url_equal_to_the_plugins_own_uses_its_key() -> None:
    assert heketi_for_volume({"resturl": OWN + "/"}, DEFAULTS).key == "own-key"


def test_no_url_anywhere_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as caught:
        heketi_for_volume({"key": "k"}, HeketiDefaults())
    assert str(caught.value) == (
        "no Heketi URL for this volume: put 'resturl' in the Secret the CO passes "
        "(StorageClass parameters csi.storage.k8s.io/provisioner-secret-name and "
        "csi.storage.k8s.io/controller-expand-secret-name) or start the plugin with "
        "--heketi-url"
    )


def test_a_secret_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(InvalidArgument) as caught:
        heketi_for_volume({"resturl": "http://a:hunter2@h:1"}, DEFAULTS)
    assert "hunter2" not in str(caught.value)
    assert str(caught.value).startswith("secret key 'resturl' must not contain credentials")


def test_bad_plugin_url_is_refused_at_startup() -> None:
    with pytest.raises(InvalidArgument, match="--heketi-url must be an http"):
        HeketiDefaults(url="heketi:8080")


def test_defaults_repr_hides_the_key() -> None:
    assert "own-key" not in repr(DEFAULTS)


def test_class_calls_use_the_class_settings_and_the_secret_key() -> None:
    params = parse_parameters(with_url({"restuser": "user", "restauthenabled": "true"}, OWN))
    config = heketi_for_class(params, {"key": "from-secret"}, DEFAULTS)
    assert (config.url, config.user, config.key, config.auth_enabled) == (
        OWN,
        "user",
        "from-secret",
        True,
    )


def test_class_calls_fall_back_to_the_inline_then_the_plugin_key() -> None:
    inline = parse_parameters({"resturl": OWN, "restuserkey": "inline"})
    assert heketi_for_class(inline, {}, DEFAULTS).key == "inline"
    plain = parse_parameters({"resturl": OWN})
    assert heketi_for_class(plain, {}, DEFAULTS).key == "own-key"


def test_class_with_auth_disabled_sends_no_key() -> None:
    params = parse_parameters({"resturl": OWN, "restauthenabled": "false"})
    config = heketi_for_class(params, {"key": "k"}, DEFAULTS)
    assert (config.key, config.auth_enabled, config.sends_token) == (None, False, False)


def test_class_url_must_be_the_one_delete_will_use() -> None:
    params = parse_parameters({"resturl": OTHER})
    with pytest.raises(InvalidArgument) as caught:
        heketi_for_class(params, {}, DEFAULTS)
    assert str(caught.value) == (
        f"StorageClass 'resturl' {OTHER} differs from the Heketi URL DeleteVolume will use "
        f"({OWN}, from the secret's 'resturl' or --heketi-url): make them equal, or drop "
        "'resturl' from the class"
    )


def test_class_url_equal_to_the_secret_url_is_fine() -> None:
    params = parse_parameters({"resturl": OTHER})
    assert heketi_for_class(params, {"resturl": OTHER, "key": "k"}, DEFAULTS).url == OTHER


def test_class_ca_file_wins_over_the_plugins() -> None:
    https = "https://heketi.own:8443"
    defaults = HeketiDefaults(url=https, ca_file="/plugin-ca.pem")
    params = parse_parameters({"resturl": https, "restcafile": "/class-ca.pem"})
    assert heketi_for_class(params, {}, defaults).ca_bundle == "/class-ca.pem"


def test_capacity_uses_the_plugin_key_only_for_its_own_heketi() -> None:
    own = heketi_for_capacity(parse_parameters({"resturl": OWN}), DEFAULTS)
    other = heketi_for_capacity(parse_parameters({"resturl": OTHER}), DEFAULTS)
    assert (own.key, other.key) == ("own-key", None)


def test_sidecar_keys_are_split_off_and_the_claim_kept() -> None:
    split = split_parameters(
        {
            "volumetype": "none",
            "csi.storage.k8s.io/pvc/name": "data",
            "csi.storage.k8s.io/pvc/namespace": "shop",
            "csi.storage.k8s.io/provisioner-secret-name": "s",
            "csi.storage.k8s.io/fstype": "glusterfs",
        }
    )
    assert split.parameters == {"volumetype": "none"}
    assert (split.claim_namespace, split.claim_name) == ("shop", "data")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, {"resturl": OWN}),
        ({"RESTURL": OTHER}, {"RESTURL": OTHER}),
        ({"resturl": " "}, {"resturl": OWN}),
    ],
    ids=["absent", "given-any-case", "blank"],
)
def test_with_url_fills_in_only_a_missing_resturl(
    parameters: dict[str, str], expected: dict[str, str]
) -> None:
    assert with_url(parameters, OWN) == expected
