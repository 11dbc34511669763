"""Heketi over HTTPS: certificates are verified, a bad one is a clear error, never ignored."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner import errors, names
from provisioner.heketi.client import HeketiClient, HeketiConfig
from provisioner.heketi.errors import HeketiError
from provisioner.heketi.types import Durability, VolumeCreateRequest
from provisioner.storageclass import parse_parameters
from provisioner.volumes import heketi_config
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from testbed.tls import Pki, make_pki
from tests.integration.controller.conftest import (
    SYSTEM_NS,
    Cluster,
    add_namespaces_and_secret,
    wait_for,
)

KEY = "tls-admin-key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def https_heketi(pki: Pki) -> Iterator[HeketiTestServer]:
    with HeketiTestServer(admin_key=KEY, tls=pki.server_context()) as server:
        yield server


def _client(url: str, ca_bundle: str | None) -> HeketiClient:
    # One attempt: a certificate failure must surface at once, not after retries.
    return HeketiClient(HeketiConfig(url=url, key=KEY, ca_bundle=ca_bundle, retry_attempts=1))


def test_https_heketi_is_used_when_its_certificate_chains_to_the_given_ca(
    https_heketi: HeketiTestServer, pki: Pki
) -> None:
    assert https_heketi.url.startswith("https://")
    client = _client(https_heketi.url, str(pki.ca_file))
    volume = client.create_volume(
        VolumeCreateRequest(size_gib=1, name="tls-ok", durability=Durability(type="none"))
    )
    assert client.get_volume(volume.id).name == "tls-ok"
    client.delete_volume(volume.id)


def test_without_a_ca_bundle_the_system_trust_store_verifies(
    https_heketi: HeketiTestServer, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenSSL's system store, here pointed at the test CA; certifi would not know it.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    _client(https_heketi.url, None).hello()


def test_storage_class_restcafile_reaches_the_client_and_verifies(
    https_heketi: HeketiTestServer, pki: Pki
) -> None:
    params = parse_parameters({"resturl": https_heketi.url, "restcafile": str(pki.ca_file)})
    client = HeketiClient(heketi_config(params, key=KEY))
    client.hello()


@pytest.mark.parametrize(
    "ca",
    [
        pytest.param("rogue", id="certificate-signed-by-another-ca"),
        pytest.param(None, id="self-made-ca-not-in-the-system-store"),
    ],
)
def test_untrusted_certificate_is_refused_with_a_clear_error_and_no_request(
    https_heketi: HeketiTestServer, pki: Pki, ca: str | None
) -> None:
    before = len(https_heketi.requests)
    bundle = str(pki.rogue_ca_file) if ca == "rogue" else None
    with pytest.raises(HeketiError) as caught:
        _client(https_heketi.url, bundle).list_volume_ids()
    message = str(caught.value)
    assert "TLS" in message and "certificate verify failed" in message
    assert https_heketi.url in message
    assert len(https_heketi.requests) == before  # nothing was sent in the clear or unverified


def test_certificate_for_another_host_name_is_refused(tmp_path: Path) -> None:
    other = make_pki(tmp_path, hosts=("heketi.example.invalid",))
    with HeketiTestServer(admin_key=KEY, tls=other.server_context()) as server:
        with pytest.raises(HeketiError) as caught:
            _client(server.url, str(other.ca_file)).list_volume_ids()
        assert "TLS" in str(caught.value)
        assert server.requests == []


def test_missing_ca_bundle_file_is_a_clear_error(https_heketi: HeketiTestServer) -> None:
    with pytest.raises(errors.ProvisionerError, match=r"/nonexistent/ca\.pem"):
        _client(https_heketi.url, "/nonexistent/ca.pem").list_volume_ids()


def test_plain_http_client_gets_no_answer_from_a_tls_server(
    https_heketi: HeketiTestServer,
) -> None:
    plain_url = https_heketi.url.replace("https://", "http://")
    with pytest.raises(HeketiError):
        _client(plain_url, None).list_volume_ids()


def test_ca_bundle_that_is_not_pem_is_a_clear_tls_error(
    https_heketi: HeketiTestServer, tmp_path: Path
) -> None:
    garbage = tmp_path / "not-a-ca.pem"
    garbage.write_text("this is not a certificate\n")
    with pytest.raises(HeketiError, match="TLS"):
        _client(https_heketi.url, str(garbage)).list_volume_ids()


def test_controller_uses_restcafile_end_to_end_and_reports_a_bad_ca_in_an_event(
    https_heketi: HeketiTestServer, pki: Pki
) -> None:
    with KubeTestServer(binder=True) as kube:
        add_namespaces_and_secret(kube, key=KEY)
        cluster = Cluster(kube=kube, heketi=https_heketi)
        common = {"resturl": https_heketi.url, "secretNamespace": SYSTEM_NS, "secretName": "heketi"}
        cluster.storage_class(parameters={**common, "restcafile": str(pki.ca_file)})
        cluster.storage_class("rogue", parameters={**common, "restcafile": str(pki.rogue_ca_file)})
        cluster.start_controller()
        try:
            cluster.claim("data")
            pv = cluster.pv_for(cluster.wait_bound("data"))
            assert pv is not None
            assert pv["metadata"]["annotations"][names.ANN_HEKETI_CA] == str(pki.ca_file)
            cluster.claim("bad", storage_class="rogue")
            event = cluster.wait_event("ProvisioningFailed", name="bad")
            assert "certificate verify failed" in event["message"]
            cluster.delete_claim("data")  # deletion reaches Heketi over TLS via the PV annotation
            wait_for(
                "PV deleted", lambda: kube.get("persistentvolumes", pv["metadata"]["name"]) is None
            )
        finally:
            for controller in list(cluster.controllers):
                cluster.stop_controller(controller)
