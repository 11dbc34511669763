"""deploy/components/gluster-tls/: with the base or the sidecars overlay it renders,
validates, and gives the node plugin the Secret glusterfs-tls and --gluster-tls-dir."""

import os
from pathlib import Path

import kubernetes_validate
import pytest

from provisioner import cli
from provisioner.csi import gluster_tls
from tests.unit.deploy.manifests import (
    DEPLOY,
    Obj,
    base_objects,
    container,
    expand_env,
    find,
    flag_value,
    kustomize_render,
    pod_spec,
)

COMPONENT = DEPLOY / "components" / "gluster-tls"
TLS_DIR = "/etc/glusterfs-tls"
KUBERNETES_VERSIONS = ("1.26", "1.37")
TARGETS = {"base": DEPLOY, "sidecars": DEPLOY / "overlays" / "sidecars"}


def _render_with_component(tmp_path: Path, target: Path) -> list[Obj]:
    """What a user's kustomization (the target plus the component) renders."""
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(target, tmp_path)}\n"
        f"components:\n  - {os.path.relpath(COMPONENT, tmp_path)}\n"
    )
    return kustomize_render(tmp_path)


@pytest.fixture(params=sorted(TARGETS))
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> list[Obj]:
    return _render_with_component(tmp_path, TARGETS[request.param])


def _node(objects: list[Obj]) -> Obj:
    return find(objects, "DaemonSet", "glusterfs-provisioner-node")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_validates_against_the_kubernetes_schema(
    rendered: list[Obj], version: str
) -> None:
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_node_plugin_mounts_the_secret_read_only_with_mode_0400(rendered: list[Obj]) -> None:
    node = _node(rendered)
    (mount,) = [m for m in container(node, "glusterfs-plugin")["volumeMounts"]
                if m["mountPath"] == TLS_DIR]  # fmt: skip
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod_spec(node)["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "glusterfs-tls"
    assert volume["secret"]["defaultMode"] == 0o400
    names = [gluster_tls.CERT_NAME, gluster_tls.KEY_NAME, gluster_tls.CA_NAME]
    assert volume["secret"]["items"] == [{"key": name, "path": name} for name in names]


def test_only_the_node_plugin_gets_the_flag_and_its_arguments_parse_to_that_dir(
    rendered: list[Obj],
) -> None:
    node = _node(rendered)
    plugin = container(node, "glusterfs-plugin")
    assert flag_value(plugin["args"], "--gluster-tls-dir") == TLS_DIR
    others = [c for c in pod_spec(node)["containers"] if c["name"] != "glusterfs-plugin"]
    assert not any("--gluster-tls-dir" in " ".join(c.get("args", [])) for c in others)
    args = expand_env(plugin["args"], {"NODE_ID": "worker-1"})
    parsed = cli.build_parser().parse_args(args)  # as `node` reads it (TlsDir checks it)
    assert gluster_tls.TlsDir(parsed.gluster_tls_dir).path == Path(TLS_DIR)


def test_without_the_component_the_node_plugin_has_no_tls_dir() -> None:
    plugin = container(_node(base_objects()), "glusterfs-plugin")
    assert not any(arg.startswith("--gluster-tls-dir") for arg in plugin["args"])
