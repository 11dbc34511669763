"""The node plugin's one call to the Kubernetes API, as its service account under
deploy/'s RBAC (deploy/base/node-rbac.yaml), on the API test server and on a real
kube-apiserver 1.36 (`make contract-kube`): a node whose FUSE clients cannot be kept
out of the plugin's cgroups gets a Warning Event that `kubectl describe node` lists."""

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from provisioner.csi import node_command
from provisioner.csi.node_events import NODE_EVENT_NAMESPACE
from testbed.clusters import Cluster
from tests.contract.controller_world import wait_for


def test_a_node_without_usable_cgroups_gets_a_warning_event_as_the_node_account(
    cluster: Cluster, tmp_path: Path
) -> None:
    node = f"contract-node-{uuid.uuid4().hex[:8]}"
    (tmp_path / "cgroup").mkdir()  # no cgroup tree mounted here: the plugin cannot escape
    argv = [sys.executable, "-m", "provisioner", "--log-format", "json", "node",
            "--node-id", node, "--endpoint", f"unix://{tmp_path}/csi.sock",
            "--kubelet-dir", str(tmp_path / "kubelet"), "--mount-log-dir", str(tmp_path / "logs"),
            "--state-dir", str(tmp_path / "state"), "--metrics-address", "",
            "--fuse-cgroup", str(tmp_path / "cgroup" / "fuse"),
            "--kubeconfig", str(cluster.kubeconfig("node", tmp_path))]  # fmt: skip
    log = tmp_path / "plugin.log"

    def ours() -> list[dict[str, Any]]:
        events = cluster.list("events", NODE_EVENT_NAMESPACE)
        return [e for e in events if e["involvedObject"].get("name") == node]

    with log.open("wb") as out:
        plugin = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("the Event sent", lambda: "Event sent on the node" in log.read_text() or None)
        (event,) = ours()
    finally:
        plugin.terminate()
        plugin.wait(timeout=60)
        for made in ours():
            cluster.delete("events", made["metadata"]["name"], NODE_EVENT_NAMESPACE)
    about = {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node}
    assert event["involvedObject"] == about
    assert (event["type"], event["reason"]) == ("Warning", node_command.FUSE_CGROUPS_UNAVAILABLE)
