"""The server as a process, and kubectl talking to it (discovery, tables, all namespaces)."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kubernetes import client, config

from testbed.kube.server import KubeTestServer
from tests.integration.test_servers.kube_support import pv_body, pvc_body, sc_body

#: Seconds any kubectl call or server start may take before the test fails.
COMMAND_TIMEOUT = 30


@pytest.fixture(scope="module")
def server() -> Iterator[KubeTestServer]:
    with KubeTestServer() as kube:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        kube.create(
            {
                **pvc_body("data", volume_name="pv-data"),
                "metadata": {"name": "data", "namespace": "team"},
            }
        )
        kube.create(pv_body("pv-data", size="5Gi", claim=("team", "data")))
        kube.create(sc_body("glusterfs", default=True))
        yield kube


def _kubectl(server: KubeTestServer, tmp_path: Path, *args: str) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}
    done = subprocess.run(
        [kubectl, "--server", server.url, *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kubectl_lists_claims_in_all_namespaces(server: KubeTestServer, tmp_path: Path) -> None:
    lines = _kubectl(server, tmp_path, "get", "pvc", "-A").splitlines()
    assert lines[0].split()[:4] == ["NAMESPACE", "NAME", "STATUS", "VOLUME"]
    assert lines[1].split()[:4] == ["team", "data", "Pending", "pv-data"]


def test_kubectl_lists_volumes_and_classes(server: KubeTestServer, tmp_path: Path) -> None:
    volumes = _kubectl(server, tmp_path, "get", "pv").splitlines()
    assert volumes[1].split()[:3] == ["pv-data", "5Gi", "RWO"]
    assert "team/data" in volumes[1]
    classes = _kubectl(server, tmp_path, "get", "sc").splitlines()
    assert classes[1].split()[:3] == ["glusterfs", "(default)", "glusterfs.csi.heketi.io"]


def test_kubectl_reads_objects_as_yaml(server: KubeTestServer, tmp_path: Path) -> None:
    out = _kubectl(
        server, tmp_path, "get", "pvc", "data", "-n", "team", "-o", "jsonpath={.spec.volumeName}"
    )
    assert out == "pv-data"


def test_server_runs_as_a_process_and_writes_a_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testbed.kube",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig-out",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("kube test server listening on http://127.0.0.1:")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        names = {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
        assert "default" in names
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=COMMAND_TIMEOUT)
    assert code == 0


def test_command_line_rejects_a_bad_listen_address() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "testbed.kube", "--listen", "nowhere"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert "--listen wants HOST:PORT" in done.stderr


def test_watch_for_kubectl_streams_one_row_tables(server: KubeTestServer) -> None:
    url = urlsplit(server.url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=5)
    conn.request(
        "GET",
        "/api/v1/persistentvolumeclaims?watch=true&timeoutSeconds=1",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    events = [json.loads(line) for line in conn.getresponse().read().splitlines()]
    conn.close()
    assert [e["type"] for e in events] == ["ADDED"]
    table = events[0]["object"]
    assert table["kind"] == "Table"
    assert table["rows"][0]["cells"][:3] == ["data", "Pending", "pv-data"]
