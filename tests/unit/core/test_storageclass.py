"""StorageClass parameters: every rule and every error message."""

from typing import Any

import pytest

from provisioner.core.storageclass import (
    ABSOLUTE_GID_MAX,
    CANONICAL_NAMES,
    InvalidParameter,
    ProvisioningParams,
    parse_parameters,
)
from provisioner.errors import InvalidArgument
from provisioner.heketi.types import Durability

URL = "http://heketi.storage.svc:8080"
CLUSTER_A = "0123456789abcdef0123456789abcdef"
CLUSTER_B = "fedcba9876543210fedcba9876543210"


def parse(**extra: str) -> ProvisioningParams:
    return parse_parameters({"resturl": URL, **extra})


def test_only_resturl_gives_the_in_tree_defaults() -> None:
    assert parse() == ProvisioningParams(
        rest_url=URL,
        rest_auth_enabled=True,
        rest_user="admin",
        rest_user_key=None,
        secret_namespace=None,
        secret_name=None,
        cluster_ids=(),
        durability=Durability(type="replicate", replica=3),
        gid_min=2000,
        gid_max=2147483647,
        volume_options=(),
        volume_name_prefix=None,
        snap_factor=None,
        rest_ca_file=None,
        warnings=(),
    )


def test_a_full_in_tree_class_parses_every_field() -> None:
    params = parse_parameters(
        {
            "resturl": "https://heketi.example.com:8443/",
            "restauthenabled": "true",
            "restuser": "user",
            "secretNamespace": "storage",
            "secretName": "heketi-secret",
            "clusterid": f"{CLUSTER_A}, {CLUSTER_B}",
            "volumetype": "disperse:4:2",
            "gidMin": "40000",
            "gidMax": "50000",
            "volumeoptions": "client.ssl on, server.ssl on",
            "volumenameprefix": "dept-dev",
            "snapfactor": "10",
            "restcafile": "/etc/heketi-ca/ca.crt",
        }
    )
    assert params == ProvisioningParams(
        rest_url="https://heketi.example.com:8443",
        rest_auth_enabled=True,
        rest_user="user",
        secret_namespace="storage",
        secret_name="heketi-secret",
        cluster_ids=(CLUSTER_A, CLUSTER_B),
        durability=Durability(type="disperse", data=4, redundancy=2),
        gid_min=40000,
        gid_max=50000,
        volume_options=("client.ssl on", "server.ssl on"),
        volume_name_prefix="dept-dev",
        snap_factor=10.0,
        rest_ca_file="/etc/heketi-ca/ca.crt",
    )
    assert params.uses_secret


@pytest.mark.parametrize(
    "key", ["RESTURL", "restURL", "ResTuRl", "resturl"], ids=["upper", "camel", "mixed", "lower"]
)
def test_keys_are_matched_case_insensitively(key: str) -> None:
    params = parse_parameters({key: URL, "SECRETNAME": "s", "SecretNamespace": "ns"})
    assert (params.rest_url, params.secret_name, params.secret_namespace) == (URL, "s", "ns")


def test_every_documented_parameter_is_accepted_in_its_canonical_spelling() -> None:
    values = {
        "resturl": "https://h:1",
        "restauthenabled": "true",
        "restuser": "admin",
        "restuserkey": "k",
        "secretNamespace": "ns",
        "secretName": "name",
        "clusterid": CLUSTER_A,
        "volumetype": "none",
        "gidMin": "2000",
        "gidMax": "3000",
        "volumeoptions": "a b",
        "volumenameprefix": "p",
        "snapfactor": "1",
        "restcafile": "/ca.pem",
        "customepnameprefix": "ep",
    }
    assert set(values) == set(CANONICAL_NAMES)
    parse_parameters(values)


def test_empty_values_mean_the_default() -> None:
    params = parse(volumetype="", gidMin=" ", clusterid="", restuser="", snapfactor="")
    assert params == parse()


def test_values_are_stripped_of_surrounding_blanks() -> None:
    assert parse(volumetype=" replicate:2 ").durability == Durability(type="replicate", replica=2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("replicate", Durability(type="replicate", replica=3)),
        ("replicate:1", Durability(type="replicate", replica=1)),
        ("replicate:2", Durability(type="replicate", replica=2)),
        ("Replicate:3", Durability(type="replicate", replica=3)),
        ("disperse:4:2", Durability(type="disperse", data=4, redundancy=2)),
        ("disperse:8:3", Durability(type="disperse", data=8, redundancy=3)),
        ("none", Durability(type="none")),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else "",
)
def test_volumetype_forms(value: str, expected: Durability) -> None:
    assert parse(volumetype=value).durability == expected


def test_auth_disabled_drops_credentials_and_says_so() -> None:
    params = parse(restauthenabled="FALSE", restuserkey="k", secretName="s", secretNamespace="ns")
    assert not params.rest_auth_enabled
    assert (params.rest_user_key, params.secret_name, params.secret_namespace) == (None,) * 3
    assert params.warnings == (
        "StorageClass parameters restuserkey, secretNamespace, secretName are ignored because "
        "'restauthenabled' is 'false'",
    )


def test_auth_disabled_without_credentials_warns_nothing() -> None:
    assert parse(restauthenabled="false").warnings == ()


def test_inline_key_is_kept_but_warned_deprecated() -> None:
    params = parse(restuserkey="s3cret")
    assert params.rest_user_key == "s3cret"
    assert not params.uses_secret
    assert params.warnings == (
        "StorageClass parameter 'restuserkey' is deprecated: it keeps the Heketi key in plain "
        "text in the class; put the key in a Secret of type kubernetes.io/glusterfs (data key "
        "'key') and name it with 'secretNamespace' and 'secretName'",
    )
    assert "s3cret" not in repr(params)


def test_secret_takes_precedence_over_the_inline_key() -> None:
    params = parse(restuserkey="s3cret", secretName="s", secretNamespace="ns")
    assert params.rest_user_key is None
    assert params.warnings == (
        "StorageClass parameter 'restuserkey' is ignored because 'secretName' is set; "
        "remove it from the class",
    )


def test_customepnameprefix_is_accepted_with_a_warning() -> None:
    assert parse(customepnameprefix="ep").warnings == (
        "StorageClass parameter 'customepnameprefix' has no effect: CSI volumes need no "
        "Endpoints object",
    )


def test_volume_options_are_normalised_and_split_on_commas() -> None:
    params = parse(volumeoptions="performance.cache-size   256MB,,  client.ssl on ")
    assert params.volume_options == ("performance.cache-size 256MB", "client.ssl on")


def test_gid_range_may_be_a_single_gid() -> None:
    params = parse(gidMin="5000", gidMax="5000")
    assert (params.gid_min, params.gid_max) == (5000, 5000)


def test_gid_bounds_are_inclusive() -> None:
    params = parse(gidMin="2000", gidMax=str(ABSOLUTE_GID_MAX))
    assert (params.gid_min, params.gid_max) == (2000, ABSOLUTE_GID_MAX)


def test_snapfactor_bounds_are_inclusive() -> None:
    assert parse(snapfactor="100").snap_factor == 100.0
    assert parse(snapfactor="1.5").snap_factor == 1.5


URL_MESSAGE = (
    "StorageClass parameter 'resturl' must be an http:// or https:// URL of a host "
    "(Heketi serves its API at the root: no path or query), "
    "e.g. http://heketi.storage.svc:8080; got {!r}"
)
VOLUMETYPE_MESSAGE = (
    "StorageClass parameter 'volumetype' must be 'replicate:<replicas>' (e.g. replicate:3), "
    "'disperse:<data>:<redundancy>' (e.g. disperse:4:2) or 'none'; got {!r}"
)
GID_MESSAGE = "StorageClass parameter {!r} must be an integer from 2000 to 2147483647; got {!r}"
BAD: list[Any] = [
    pytest.param(
        {"resturl": ""},
        "resturl",
        "StorageClass parameter 'resturl' is required: the Heketi REST URL, "
        "e.g. http://heketi.storage.svc:8080",
        id="resturl-empty",
    ),
    pytest.param(
        {"resturl": "heketi:8080"},
        "resturl",
        URL_MESSAGE.format("heketi:8080"),
        id="resturl-no-scheme",
    ),
    pytest.param(
        {"resturl": "ftp://heketi"},
        "resturl",
        URL_MESSAGE.format("ftp://heketi"),
        id="resturl-ftp",
    ),
    pytest.param(
        {"resturl": "http://heketi:8080/api"},
        "resturl",
        URL_MESSAGE.format("http://heketi:8080/api"),
        id="resturl-path",
    ),
    pytest.param(
        {"resturl": "http://heketi:8080?x=1"},
        "resturl",
        URL_MESSAGE.format("http://heketi:8080?x=1"),
        id="resturl-query",
    ),
    pytest.param(
        {"resturl": "http://heketi:99999"},
        "resturl",
        URL_MESSAGE.format("http://heketi:99999"),
        id="resturl-bad-port",
    ),
    pytest.param(
        {"resturl": "http://admin:hunter2@heketi:8080"},
        "resturl",
        "StorageClass parameter 'resturl' must not contain credentials (user:password@); "
        "set 'restuser' and put the key in the Secret named by 'secretName'",
        id="resturl-credentials",
    ),
    pytest.param(
        {"bogus": "1"},
        "bogus",
        "unknown StorageClass parameter 'bogus'; supported parameters: resturl, "
        "restauthenabled, restuser, restuserkey, secretNamespace, secretName, clusterid, "
        "volumetype, gidMin, gidMax, volumeoptions, volumenameprefix, snapfactor, restcafile, "
        "customepnameprefix",
        id="unknown-key",
    ),
    pytest.param(
        {"gidmin": "3000", "GIDMIN": "4000"},
        "gidMin",
        "StorageClass parameter 'gidMin' is given twice (as 'gidmin' and 'GIDMIN'); keep one",
        id="duplicate-key-by-case",
    ),
    pytest.param(
        {"restauthenabled": "yes"},
        "restauthenabled",
        "StorageClass parameter 'restauthenabled' must be 'true' or 'false'; got 'yes'",
        id="restauthenabled-not-bool",
    ),
    pytest.param(
        {"secretName": "heketi"},
        "secretName",
        "StorageClass parameters 'secretNamespace' and 'secretName' must be set together; "
        "only 'secretName' is set",
        id="secret-name-alone",
    ),
    pytest.param(
        {"secretNamespace": "storage"},
        "secretNamespace",
        "StorageClass parameters 'secretNamespace' and 'secretName' must be set together; "
        "only 'secretNamespace' is set",
        id="secret-namespace-alone",
    ),
    pytest.param(
        {"secretName": "Heketi_Secret", "secretNamespace": "ns"},
        "secretName",
        "StorageClass parameter 'secretName' must be a valid Kubernetes Secret name (lowercase "
        "letters, digits and '-'); got 'Heketi_Secret'",
        id="secret-name-invalid",
    ),
    pytest.param(
        {"secretName": "s", "secretNamespace": "kube.system"},
        "secretNamespace",
        "StorageClass parameter 'secretNamespace' must be a valid Kubernetes namespace name "
        "(lowercase letters, digits and '-'); got 'kube.system'",
        id="secret-namespace-invalid",
    ),
    pytest.param(
        {"clusterid": f"{CLUSTER_A},cluster-2"},
        "clusterid",
        "StorageClass parameter 'clusterid' entry 'cluster-2' is not a Heketi cluster id "
        "(32 lowercase hexadecimal characters, as `heketi-cli cluster list` prints)",
        id="clusterid-not-hex",
    ),
    pytest.param(
        {"volumetype": "mirror:2"},
        "volumetype",
        VOLUMETYPE_MESSAGE.format("mirror:2"),
        id="volumetype-unknown-kind",
    ),
    pytest.param(
        {"volumetype": "disperse:4"},
        "volumetype",
        VOLUMETYPE_MESSAGE.format("disperse:4"),
        id="volumetype-disperse-without-redundancy",
    ),
    pytest.param(
        {"volumetype": "replicate:3:1"},
        "volumetype",
        VOLUMETYPE_MESSAGE.format("replicate:3:1"),
        id="volumetype-replicate-extra-count",
    ),
    pytest.param(
        {"volumetype": "none:1"},
        "volumetype",
        VOLUMETYPE_MESSAGE.format("none:1"),
        id="volumetype-none-with-count",
    ),
    pytest.param(
        {"volumetype": "replicate:0"},
        "volumetype",
        "StorageClass parameter 'volumetype' needs a positive integer replica count; "
        "got '0' in 'replicate:0'",
        id="volumetype-zero-replicas",
    ),
    pytest.param(
        {"volumetype": "replicate:three"},
        "volumetype",
        "StorageClass parameter 'volumetype' needs a positive integer replica count; "
        "got 'three' in 'replicate:three'",
        id="volumetype-replicas-not-integer",
    ),
    pytest.param(
        {"volumetype": "disperse:x:2"},
        "volumetype",
        "StorageClass parameter 'volumetype' needs a positive integer data brick count; "
        "got 'x' in 'disperse:x:2'",
        id="volumetype-disperse-bad-data",
    ),
    pytest.param(
        {"volumetype": "disperse:4:-1"},
        "volumetype",
        "StorageClass parameter 'volumetype' needs a positive integer redundancy brick count; "
        "got '-1' in 'disperse:4:-1'",
        id="volumetype-disperse-bad-redundancy",
    ),
    pytest.param(
        {"gidMin": "abc"}, "gidMin", GID_MESSAGE.format("gidMin", "abc"), id="gidmin-not-int"
    ),
    pytest.param(
        {"gidMin": "1999"},
        "gidMin",
        GID_MESSAGE.format("gidMin", "1999"),
        id="gidmin-below-floor",
    ),
    pytest.param(
        {"gidMax": "2147483648"},
        "gidMax",
        GID_MESSAGE.format("gidMax", "2147483648"),
        id="gidmax-above-ceiling",
    ),
    pytest.param(
        {"gidMax": "-5"}, "gidMax", GID_MESSAGE.format("gidMax", "-5"), id="gidmax-negative"
    ),
    pytest.param(
        {"gidMin": "5000", "gidMax": "4000"},
        "gidMin",
        "StorageClass parameter 'gidMin' (5000) must not be greater than 'gidMax' (4000)",
        id="gidmin-above-gidmax",
    ),
    pytest.param(
        {"gidMax": "1999"},
        "gidMax",
        GID_MESSAGE.format("gidMax", "1999"),
        id="gidmax-below-floor",
    ),
    pytest.param(
        {"volumeoptions": "client.ssl on,server.ssl"},
        "volumeoptions",
        "StorageClass parameter 'volumeoptions' entry 'server.ssl' must be '<option> <value>', "
        "e.g. 'performance.cache-size 256MB'; separate entries with commas",
        id="volumeoptions-without-value",
    ),
    pytest.param(
        {"volumenameprefix": "dept_dev"},
        "volumenameprefix",
        "StorageClass parameter 'volumenameprefix' must not contain '_' (it separates prefix, "
        "namespace, claim name and UID in the volume name); got 'dept_dev'",
        id="prefix-underscore",
    ),
    pytest.param(
        {"volumenameprefix": "dept.dev"},
        "volumenameprefix",
        "StorageClass parameter 'volumenameprefix' may hold only letters, digits and '-', "
        "at most 32 characters; got 'dept.dev'",
        id="prefix-bad-character",
    ),
    pytest.param(
        {"volumenameprefix": "p" * 33},
        "volumenameprefix",
        "StorageClass parameter 'volumenameprefix' may hold only letters, digits and '-', "
        f"at most 32 characters; got {'p' * 33!r}",
        id="prefix-too-long",
    ),
    pytest.param(
        {"snapfactor": "0.5"},
        "snapfactor",
        "StorageClass parameter 'snapfactor' must be a number from 1 to 100; got '0.5'",
        id="snapfactor-too-small",
    ),
    pytest.param(
        {"snapfactor": "101"},
        "snapfactor",
        "StorageClass parameter 'snapfactor' must be a number from 1 to 100; got '101'",
        id="snapfactor-too-big",
    ),
    pytest.param(
        {"snapfactor": "nan"},
        "snapfactor",
        "StorageClass parameter 'snapfactor' must be a number from 1 to 100; got 'nan'",
        id="snapfactor-nan",
    ),
    pytest.param(
        {"snapfactor": "ten"},
        "snapfactor",
        "StorageClass parameter 'snapfactor' must be a number from 1 to 100; got 'ten'",
        id="snapfactor-not-number",
    ),
    pytest.param(
        {"restcafile": "ca.pem", "resturl": "https://h:1"},
        "restcafile",
        "StorageClass parameter 'restcafile' must be an absolute path to a PEM file mounted in "
        "the provisioner container; got 'ca.pem'",
        id="restcafile-relative",
    ),
    pytest.param(
        {"restcafile": "/ca.pem"},
        "restcafile",
        "StorageClass parameter 'restcafile' applies only to an https:// 'resturl'",
        id="restcafile-with-http",
    ),
]


@pytest.mark.parametrize(("extra", "parameter", "message"), BAD)
def test_bad_parameters_fail_with_an_exact_message(
    extra: dict[str, str], parameter: str, message: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_parameters({"resturl": URL, **extra})
    assert str(caught.value) == message
    assert caught.value.parameter == parameter
    assert isinstance(caught.value, InvalidArgument)


def test_missing_resturl_is_an_error() -> None:
    with pytest.raises(InvalidParameter, match="'resturl' is required"):
        parse_parameters({"volumetype": "none"})


def test_a_credential_in_the_url_is_never_echoed() -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_parameters({"resturl": "http://admin:hunter2@heketi:8080"})
    assert "hunter2" not in str(caught.value)
