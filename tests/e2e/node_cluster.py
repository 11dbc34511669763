"""A real cluster with a real node for `make e2e-node`: kubectl, the manifests, the rig's patches.

Where the cluster is comes from the environment (the test is skipped without it):

  E2E_NODE_KUBECONFIG   admin kubeconfig of the cluster (required)
  E2E_NODE_API          host:port at which pods on the host network reach the API server,
                        for clusters without kube-proxy (run-kube.sh + run-node.sh); unset
                        on a real cluster. With it, the rig's patches are applied: the
                        controller runs on the host network with KUBERNETES_SERVICE_HOST/
                        PORT pointing there (the node plugin gets the same address), and
                        one controller replica (two would share the host's metrics port).
  E2E_NODE_IMAGE        our image as the node has it (default: the base's
                        glusterfs-provisioner:<tag>)
  E2E_NODE_ROLLOUT_IMAGE  a second tag of it on the node, for the DaemonSet rollout
                        (default: <E2E_NODE_IMAGE>-rollout)
  E2E_NODE_APP_IMAGE    image of the app pods (default: the example pod's busybox)

What a real cluster has and the rig lacks stays in these patches, never in deploy/.
"""

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NAMESPACE = "glusterfs-provisioner"
CONTROLLER = "glusterfs-provisioner-controller"
NODE_PLUGIN = "glusterfs-provisioner-node"
KUBECTL_TIMEOUT_S = 120


@dataclass(frozen=True)
class Settings:
    kubeconfig: str
    api: str
    image: str
    rollout_image: str
    app_image: str

    @classmethod
    def from_environment(cls, base_image: str, app_image: str) -> "Settings | None":
        kubeconfig = os.environ.get("E2E_NODE_KUBECONFIG", "")
        if not kubeconfig:
            return None
        image = os.environ.get("E2E_NODE_IMAGE") or base_image
        return cls(
            kubeconfig=kubeconfig,
            api=os.environ.get("E2E_NODE_API", ""),
            image=image,
            rollout_image=os.environ.get("E2E_NODE_ROLLOUT_IMAGE") or f"{image}-rollout",
            app_image=os.environ.get("E2E_NODE_APP_IMAGE") or app_image,
        )


class Kubectl:
    """kubectl with the cluster's kubeconfig; argv lists only."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_S, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def apply(self, *objects: Obj) -> None:
        self.run("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        scope = ["-n", namespace] if namespace else []
        out = self.run("get", kind, name, *scope, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def items(self, kind: str, *args: str) -> list[Obj]:
        items: list[Obj] = json.loads(self.run("get", kind, *args, "-o", "json"))["items"]
        return items

    def exec(self, pod: str, namespace: str, *command: str, check: bool = True) -> str:
        return self.run("exec", pod, "-n", namespace, "--", *command, check=check)


def rendered(settings: Settings) -> list[Obj]:
    """`kubectl kustomize deploy/`, with our image and, on the rig, the rig's patches."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)],
        capture_output=True, text=True, timeout=KUBECTL_TIMEOUT_S, check=True,
    ).stdout  # fmt: skip
    objects = [o for o in yaml.safe_load_all(out) if o]
    for obj in objects:
        for container in _containers(obj):
            if settings.image and container["image"].startswith("glusterfs-provisioner:"):
                container["image"] = settings.image
        if settings.api:
            _rig_patch(obj, settings)
    return objects


def _containers(obj: Obj) -> list[Obj]:
    if obj["kind"] not in ("Deployment", "DaemonSet"):
        return []
    containers: list[Obj] = obj["spec"]["template"]["spec"]["containers"]
    return containers


def _rig_patch(obj: Obj, settings: Settings) -> None:
    """No kube-proxy on the rig: the API only over the host network; one node, one replica."""
    host, port = settings.api.rsplit(":", 1)
    address = [
        {"name": "KUBERNETES_SERVICE_HOST", "value": host},
        {"name": "KUBERNETES_SERVICE_PORT", "value": port},
    ]
    if obj["kind"] == "Deployment" and obj["metadata"]["name"] == CONTROLLER:
        obj["spec"]["replicas"] = 1
        obj["spec"]["template"]["spec"]["hostNetwork"] = True
    for container in _containers(obj):
        if container["image"] == settings.image:  # ours, not the sidecars
            container["env"] = [*container.get("env", []), *address]


def example(name: str) -> Obj:
    loaded: Obj = yaml.safe_load((DEPLOY / "examples" / name).read_text())
    return loaded


@dataclass
class Steps:
    """Each step of the scenario and how long it took, printed as the run goes."""

    times: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        print(f"\n[e2e-node] {name} ...", flush=True)
        yield
        elapsed = time.monotonic() - start
        self.times.append((name, elapsed))
        print(f"[e2e-node] {name}: {elapsed:.1f} s", flush=True)
