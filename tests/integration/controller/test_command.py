"""`glusterfs-provisioner controller` as a process: probes, metrics, SIGTERM."""

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.integration.controller.conftest import SYSTEM_NS, Cluster, wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": server}}],
                "users": [{"name": "test", "user": {"token": "test-token"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            }
        )
    )
    return path


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), ""
    except OSError:
        return 0, ""


def _counted(base: str, sample: str) -> str | None:
    """The /metrics text once it holds `sample`."""
    status, metrics = _get(f"{base}/metrics")
    return metrics if status == 200 and sample in metrics else None


def test_the_command_serves_probes_and_metrics_and_releases_the_lease_on_sigterm(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.storage_class()
    port = _free_port()
    argv = [
        sys.executable,
        "-m",
        "provisioner",
        "--log-format",
        "json",
        "controller",
        "--kubeconfig",
        str(_kubeconfig(tmp_path / "kubeconfig", cluster.kube.url)),
        "--metrics-address",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--leader-elect",
        "--leader-election-namespace",
        SYSTEM_NS,
        "--leader-election-lease-duration",
        "4s",
        "--leader-election-renew-deadline",
        "3s",
        "--leader-election-retry-period",
        "500ms",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                raise AssertionError(f"controller exited with {process.returncode}:\n{output}")
            return _get(f"{base}/readyz")[0] == 200

        wait_for("/readyz 200", ready, timeout=20)
        assert _get(f"{base}/healthz")[0] == 200
        cluster.claim()
        cluster.wait_bound()
        # the success is counted once the reconcile returns, just after the bind the
        # test sees: wait for it rather than race it
        success = (
            'glusterfs_provisioner_operations_total{operation="provision",result="success"} 1.0'
        )
        metrics = wait_for("the success counted", lambda: _counted(base, success))
        assert "glusterfs_provisioner_leader 1.0" in metrics
        assert 'glusterfs_provisioner_heketi_responses_total{method="POST",status="202"}' in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    lease = cluster.kube.get("leases", "glusterfs-csi-heketi-io", SYSTEM_NS)
    assert lease is not None and lease["spec"]["holderIdentity"] == ""
    output = process.stdout.read().decode() if process.stdout else ""
    assert "admin-secret" not in output


def test_an_unreachable_api_server_exits_nonzero_with_a_message(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "provisioner",
        "controller",
        "--kubeconfig",
        str(_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{_free_port()}")),
        "--metrics-address",
        "",
        "--cache-sync-timeout",
        "1s",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "could not list" in result.stderr + result.stdout


def test_a_controller_killed_mid_create_leaves_one_volume_for_its_successor(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.storage_class()
    cluster.heketi.set_latency(1500)  # the create is still running when the process dies
    argv = [sys.executable, "-m", "provisioner", "controller",
            "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig", cluster.kube.url)),
            "--metrics-address", ""]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cluster.claim()
        wait_for(
            "the Heketi create to start",
            lambda: any(
                r.method == "POST" and r.path == "/volumes" for r in cluster.heketi.requests
            ),
        )
    finally:
        process.kill()
        process.wait(10)
    cluster.heketi.set_latency(0)
    cluster.start_controller()
    pvc = cluster.wait_bound()
    assert len(cluster.heketi.volumes()) == 1
    assert [pv["metadata"]["name"] for pv in cluster.kube.list("persistentvolumes")] == [
        f"pvc-{pvc['metadata']['uid']}"
    ]


def test_a_metrics_address_in_use_exits_2_naming_the_flag(cluster: Cluster, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "provisioner", "controller",
                "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig", cluster.kube.url)),
                "--metrics-address", f"127.0.0.1:{port}"]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port} (--metrics-address)" in result.stderr
