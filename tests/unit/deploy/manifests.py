"""Loading the deploy/ manifests the way the tests look at them.

The kustomize base is read straight from the files its kustomization.yaml lists,
then given the two changes the kustomization declares (the `part-of` label on
objects and pod templates, the image tag). `kubectl kustomize deploy/` must
render exactly that (tested where kubectl is installed), so every other test
works on the same objects with or without kubectl.
"""

import copy
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
#: The base's manifests and kustomization (deploy/kustomization.yaml just applies it).
BASE = DEPLOY / "base"
EXAMPLES = DEPLOY / "examples"

Obj = dict[str, Any]

#: Resources that carry pod templates, where kustomize `labels` (includeTemplates) also go.
_TEMPLATED_KINDS = {"Deployment", "DaemonSet", "StatefulSet", "Job"}
_ENV_REF = re.compile(r"\$\(([A-Z_][A-Z0-9_]*)\)")


def load_yaml_documents(path: Path) -> list[Obj]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def kustomization() -> Obj:
    docs = load_yaml_documents(BASE / "kustomization.yaml")
    assert len(docs) == 1
    return docs[0]


def base_files() -> list[Path]:
    return [BASE / name for name in kustomization()["resources"]]


def base_objects() -> list[Obj]:
    """The objects `kubectl apply -k deploy/` creates, as kustomize renders them."""
    spec = kustomization()
    objects = [obj for path in base_files() for obj in load_yaml_documents(path)]
    return [_apply_kustomization(obj, spec) for obj in objects]


def example_objects() -> list[Obj]:
    return [obj for path in sorted(EXAMPLES.glob("*.yaml")) for obj in load_yaml_documents(path)]


def _apply_kustomization(original: Obj, spec: Obj) -> Obj:
    obj = copy.deepcopy(original)
    for entry in spec.get("labels", []):
        assert entry.get("includeSelectors") is False, "selector labels are not modelled here"
        obj["metadata"].setdefault("labels", {}).update(entry["pairs"])
        if entry.get("includeTemplates") and obj["kind"] in _TEMPLATED_KINDS:
            obj["spec"]["template"]["metadata"]["labels"].update(entry["pairs"])
    images = {image["name"]: image for image in spec.get("images", [])}
    for container in pod_containers(obj):
        image = images.get(container["image"])
        if image is not None:
            container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return obj


def pod_spec(obj: Obj) -> Obj:
    """The pod spec of a Pod or of a workload's pod template; {} for other kinds."""
    if obj["kind"] == "Pod":
        spec: Obj = obj["spec"]
        return spec
    if obj["kind"] in _TEMPLATED_KINDS:
        template_spec: Obj = obj["spec"]["template"]["spec"]
        return template_spec
    return {}


def pod_containers(obj: Obj) -> Iterator[Obj]:
    spec = pod_spec(obj)
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def find(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def container(obj: Obj, name: str) -> Obj:
    matches = [c for c in pod_containers(obj) if c["name"] == name]
    assert len(matches) == 1, f"{obj['kind']}/{obj['metadata']['name']} has no container {name}"
    return matches[0]


def flag_value(args: list[str], flag: str) -> str:
    """The value of `--flag=value` (or `--flag value`) in a container's args."""
    for index, arg in enumerate(args):
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
    raise AssertionError(f"{flag} not in {args}")


def expand_env(args: list[str], values: dict[str, str]) -> list[str]:
    """Container args with kubelet's $(VAR) references replaced as kubelet would."""
    return [_ENV_REF.sub(lambda m: values[m.group(1)], arg) for arg in args]


def object_id(obj: Obj) -> str:
    namespace = obj["metadata"].get("namespace")
    prefix = f"{namespace}/" if namespace else ""
    return f"{obj['kind']}/{prefix}{obj['metadata']['name']}"


#: Seconds `kubectl kustomize` may take.
KUBECTL_TIMEOUT_S = 30


def kustomize_render(directory: Path) -> list[Obj]:
    """The objects `kubectl kustomize DIRECTORY` renders; skips where kubectl is absent
    (the other deploy/ tests read the files directly)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the other deploy/ tests read the files directly")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
