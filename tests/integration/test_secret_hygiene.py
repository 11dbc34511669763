"""The Heketi key never leaks: not in logs, Events, PV/PVC fields, gRPC errors or exceptions.

A sentinel key (and a wrong sentinel key, for auth failures) runs through the
controller, the Heketi client and the CSI services, including failure paths:
rejected credentials, Heketi answering 500, dropped connections, an outage.
Every byte the flows produce is then searched for the key, its base64 form
(as stored in Secrets) and any HS256 token (which is derived from the key).
"""

import base64
import json
import logging
import re
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog

from provisioner import log, names
from provisioner.csi import csi_pb2, csi_pb2_grpc, server
from provisioner.csi.controller import ControllerService
from provisioner.csi.heketi_access import HeketiDefaults
from provisioner.csi.identity import IdentityService
from provisioner.csi.mounter import SystemMounter
from provisioner.csi.node import NodeConfig, NodeService
from provisioner.heketi.auth import TokenSigner
from provisioner.heketi.client import HeketiClient, HeketiConfig
from provisioner.heketi.errors import HeketiError
from provisioner.heketi.types import Durability, VolumeCreateRequest
from provisioner.volumes import VolumeService
from testbed.heketi.server import HeketiTestServer
from testbed.kube.server import KubeTestServer
from tests.integration.controller.conftest import APP_NS, SYSTEM_NS, Cluster, wait_for
from tests.integration.csi.controller_harness import FAST, capability, fast_client

SENTINEL = "SENTINEL-heketi-key-2f9c1e7a5b3d4c6e8f0a1b2c"
WRONG = "SENTINEL-wrong-key-8d41b3c0e9f7a6b5c4d3e2f1"
#: Any JSON Web Token: base64url JSON header "{...", payload "{...", signature.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


FORBIDDEN = (SENTINEL, WRONG, _b64(SENTINEL), _b64(WRONG), "bearer ")


def assert_clean(where: str, text: str) -> None:
    for needle in FORBIDDEN:
        assert needle not in text, f"{needle[:12]}… leaked into {where}"
    token = JWT.search(text)
    assert token is None, f"a JWT ({token.group()[:16]}…) leaked into {where}"


@pytest.mark.parametrize(
    "leak",
    [
        pytest.param(TokenSigner(user="admin", key=SENTINEL).token("GET", "/"), id="jwt"),
        pytest.param(json.dumps({"data": {"key": _b64(SENTINEL)}}), id="secret-data"),
        pytest.param(f"Authorization: bearer x key={WRONG}", id="wrong-key"),
    ],
)
def test_the_scanner_finds_what_it_looks_for(leak: str) -> None:
    with pytest.raises(AssertionError):
        assert_clean("control", f"some log line {leak} more text")


@pytest.fixture
def debug_logs(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[Any]:
    """Our structlog output as JSON at debug level, plus every stdlib log record."""
    saved = structlog.get_config()
    log.configure(level="debug", json=True)
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        captured = capsys.readouterr()
        return captured.out + captured.err + caplog.text

    try:
        yield text
    finally:
        structlog.configure(**saved)


# ---------------------------------------------------------------------------- Heketi client


def _heketi_error_texts(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), *traceback.format_exception(error), repr(error.__dict__)]
    )


def test_heketi_client_flows_and_failures_never_show_the_key(debug_logs: Any) -> None:
    texts: list[str] = []
    with HeketiTestServer(admin_key=SENTINEL) as heketi:
        config = HeketiConfig(url=heketi.url, key=SENTINEL, **FAST)
        client = HeketiClient(config)
        texts.append(repr(config))
        volume = client.create_volume(
            VolumeCreateRequest(size_gib=1, name="hyg-a", durability=Durability(type="none"))
        )
        client.expand_volume(volume.id, add_gib=1)
        heketi.fail_next("volume_create", status=500, message="brick allocation crashed")
        heketi.drop_next("volume_get")
        for attempt in (
            lambda: client.create_volume(
                VolumeCreateRequest(size_gib=1, name="hyg-b", durability=Durability(type="none"))
            ),
            lambda: HeketiClient(HeketiConfig(url=heketi.url, key=WRONG, **FAST)).list_volumes(),
            lambda: client.get_volume("0" * 32),
        ):
            try:
                attempt()
            except HeketiError as error:
                texts.append(_heketi_error_texts(error))
        client.delete_volume(volume.id)
        assert any(r.status == 401 for r in heketi.requests)  # the wrong key was really refused
        heketi.pause()
        try:
            client.list_volume_ids()
        except HeketiError as error:
            texts.append(_heketi_error_texts(error))
    assert len(texts) >= 4
    assert_clean("Heketi error texts", "\n".join(texts))
    assert_clean("logs", debug_logs())


# ---------------------------------------------------------------------------- controller


def _secret(name: str, key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/glusterfs",
        "metadata": {"name": name, "namespace": SYSTEM_NS},
        "data": {"key": _b64(key)},
    }


def _everything_but_secrets(kube: KubeTestServer) -> str:
    kinds = ("persistentvolumes", "persistentvolumeclaims", "events", "storageclasses",
             "configmaps", "leases", "namespaces")  # fmt: skip
    return json.dumps({kind: kube.list(kind) for kind in kinds}, sort_keys=True)


def test_controller_flows_and_failures_never_show_the_key(debug_logs: Any) -> None:
    with KubeTestServer(binder=True) as kube, HeketiTestServer(admin_key=SENTINEL) as heketi:
        for namespace in (SYSTEM_NS, APP_NS):
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        kube.create(_secret("heketi", SENTINEL))
        kube.create(_secret("heketi-wrong", WRONG))
        cluster = Cluster(kube=kube, heketi=heketi)
        cluster.storage_class()
        wrong = {"resturl": heketi.url, "secretNamespace": SYSTEM_NS, "secretName": "heketi-wrong"}
        cluster.storage_class("wrong", parameters=wrong)
        cluster.start_controller()
        try:
            _drive_controller(cluster)
        finally:
            for controller in list(cluster.controllers):
                cluster.stop_controller(controller)
        assert any(r.status == 401 for r in heketi.requests)  # the wrong key was refused
        assert_clean("Kubernetes objects", _everything_but_secrets(kube))
        assert _b64(SENTINEL) in json.dumps(kube.list("secrets", SYSTEM_NS))  # control
    assert_clean("logs", debug_logs())


def _drive_controller(cluster: Cluster) -> None:
    cluster.kube.fail_next(verb="create", path_regex=".*/persistentvolumes$", status=500)
    cluster.claim("data")
    pv = cluster.pv_for(cluster.wait_bound("data"))
    assert pv is not None
    cluster.claim("denied", storage_class="wrong")
    cluster.wait_event("ProvisioningFailed", name="denied")
    cluster.heketi.fail_next("volume_create", status=500, message="brick allocation crashed")
    cluster.claim("crashed")
    cluster.wait_event("ProvisioningFailed", name="crashed")
    cluster.heketi.drop_next("volume_delete", after_commit=True)
    cluster.delete_claim("data")
    wait_for(
        "PV deleted",
        lambda: cluster.kube.get("persistentvolumes", pv["metadata"]["name"]) is None,
    )


# ---------------------------------------------------------------------------- CSI


@pytest.fixture
def csi(tmp_path: Path) -> Iterator[tuple[Any, HeketiTestServer, Path]]:
    with HeketiTestServer(admin_key=SENTINEL) as heketi:
        endpoint = f"unix://{tmp_path}/csi.sock"
        kubelet = tmp_path / "kubelet"
        kubelet.mkdir()
        controller = ControllerService(
            volumes=VolumeService(clients=fast_client), heketi=HeketiDefaults(url=heketi.url)
        )
        node = NodeService(
            config=NodeConfig(node_id="n1", kubelet_dir=kubelet, mount_log_dir=tmp_path / "l"),
            mounter=SystemMounter(runner=_refuse_to_run),
        )
        identity = IdentityService(driver_name=names.DRIVER_NAME, controller_service=True)
        grpc_server = server.serve(endpoint, identity=identity, node=node, controller=controller)
        channel = grpc.insecure_channel(endpoint)
        try:
            yield channel, heketi, kubelet
        finally:
            channel.close()
            server.stop(grpc_server, endpoint=endpoint, grace=1.0)


def _refuse_to_run(argv: Any, *, timeout: float) -> Any:
    raise AssertionError(f"no command may run in this test: {argv}")


def _call(method: Any, request: Any) -> str:
    """Make a call; return '' on success, else the status code name and details."""
    try:
        method(request, timeout=30)
    except grpc.RpcError as error:
        return f"{error.code().name}: {error.details()}"
    return ""


def test_csi_calls_and_failures_never_show_the_key(csi: Any, debug_logs: Any) -> None:
    channel, heketi, kubelet = csi
    controller = csi_pb2_grpc.ControllerStub(channel)
    node = csi_pb2_grpc.NodeStub(channel)
    good = {"key": SENTINEL}

    def create(
        name: str, secrets: dict[str, str], **parameters: str
    ) -> csi_pb2.CreateVolumeRequest:
        return csi_pb2.CreateVolumeRequest(
            name=name, volume_capabilities=[capability()], secrets=secrets,
            parameters={"resturl": heketi.url, **parameters},
        )  # fmt: skip

    created = controller.CreateVolume(create("pvc-hyg-ok", good), timeout=30).volume
    inline_key = create("pvc-hyg-inline", {}, restuserkey=SENTINEL, volumetype="bogus")
    url_with_key = create("pvc-hyg-url", good, resturl=f"http://admin:{SENTINEL}@h:1")
    wrong_delete = csi_pb2.DeleteVolumeRequest(volume_id=created.volume_id, secrets={"key": WRONG})
    stage_with_secrets = csi_pb2.NodeStageVolumeRequest(
        volume_id=created.volume_id,
        staging_target_path=str(kubelet / "s"),
        volume_capability=capability(),
        secrets=good,
        volume_context={"servers": "-oremount", "volume": "v"},
    )
    failures = [
        _call(controller.CreateVolume, create("pvc-hyg-denied", {"key": WRONG})),
        _call(controller.CreateVolume, inline_key),
        _call(controller.CreateVolume, url_with_key),
        _call(controller.DeleteVolume, wrong_delete),
        _call(node.NodeStageVolume, stage_with_secrets),
    ]
    heketi.fail_next("volume_create", status=500, message="brick allocation crashed")
    failures.append(_call(controller.CreateVolume, create("pvc-hyg-crash", good)))
    controller.DeleteVolume(
        csi_pb2.DeleteVolumeRequest(volume_id=created.volume_id, secrets=good), timeout=30
    )
    assert all(failures), failures  # every one of them failed
    assert any(f.startswith("PERMISSION_DENIED") for f in failures)
    assert_clean("gRPC error details", "\n".join(failures))
    assert_clean("logs", debug_logs())
