"""deploy/Dockerfile: one Debian 12 image for both roles, built by `make image`.

`make image` (tests/image/) really builds it where podman and root are at hand;
these tests read the Dockerfile, so that every machine catches a change that
would break the build's promises: packages only from the wheels (no index),
the tools the node plugin runs, a smoke stage no builder can skip, a non-root
default user that matches the controller's Deployment.
"""

import re
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from tests.unit.deploy.manifests import (
    DEPLOY,
    REPO,
    base_objects,
    container,
    find,
    kustomization,
    pod_spec,
)

DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
#: Test-only distributions named in the issue, by the module they install.
TEST_ONLY_MODULES = {
    "cryptography": "cryptography",
    "pytest": "pytest",
    "hypothesis": "hypothesis",
    "grpcio-tools": "grpc_tools",
}


def _joined() -> str:
    return re.sub(r"\\\n", " ", DOCKERFILE)


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions (keyword, arguments) per stage, by stage name ('' for unnamed)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in _joined().splitlines():
        words = line.split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        keyword, args = words[0], (words[1] if len(words) > 1 else "")
        if keyword == "FROM":
            name = args.split(" AS ")[1].strip() if " AS " in args else ""
            current = stages.setdefault(name, [])
        current.append((keyword, args))
    return stages


def _in(stage: str, keyword: str) -> list[str]:
    return [args for kw, args in _stages()[stage] if kw == keyword]


def test_the_base_is_an_argument_defaulting_to_the_official_python_3_11_image() -> None:
    (arg,) = [line for line in _joined().splitlines() if line.startswith("ARG BASE")]
    assert arg == "ARG BASE=python:3.11-slim-bookworm"
    assert _in("system", "FROM") == ["${BASE} AS system"]


def test_stages_run_in_order_and_the_image_is_the_last_one() -> None:
    assert list(_stages()) == ["system", "install", "runtime", "smoke", ""]
    assert _in("runtime", "FROM") == ["system AS runtime"]
    assert _in("smoke", "FROM") == ["runtime AS smoke"]
    assert _in("", "FROM") == ["runtime"]


def test_the_image_cannot_be_built_without_its_smoke_stage_passing() -> None:
    (copy,) = _in("", "COPY")
    assert copy.startswith("--from=smoke ")


def test_debian_packages_give_python_3_11_the_fuse_client_mount_and_nsenter() -> None:
    (install,) = [run for run in _in("system", "RUN") if "apt-get install" in run]
    assert "--no-install-recommends" in install
    packages = install.split("apt-get install", 1)[1].split(";", 1)[0].split()
    assert {"glusterfs-client", "mount", "util-linux", "python3"} <= set(packages)
    assert "rm -rf /var/lib/apt/lists/*" in install
    assert "sys.version_info[:2] == (3, 11)" in install


def test_packages_come_only_from_the_wheels_in_the_build_context() -> None:
    assert _in("install", "COPY") == ["wheels/ /tmp/wheels/"]
    copies = [args for stage in _stages().values() for kw, args in stage if kw == "COPY"]
    assert all(args.startswith("--from=") or args.startswith("wheels/") for args in copies)
    installs = [run for run in _in("install", "RUN") if " install " in run and "pip" in run]
    assert len(installs) == 1
    assert "--no-index" in installs[0]
    assert "--find-links=/tmp/wheels" in installs[0]


def test_only_the_virtual_environment_leaves_the_install_stage() -> None:
    assert _in("runtime", "COPY") == [
        "--from=install /opt/glusterfs-provisioner /opt/glusterfs-provisioner"
    ]


def _requires(name: str) -> set[str]:
    """What distribution `name` requires at run time (no extras), by normalised name."""
    needed = set()
    for text in metadata.requires(name) or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            needed.add(requirement.name.lower().replace("_", "-"))
    return needed


def _runtime_requirements(name: str, seen: set[str]) -> set[str]:
    """The distributions `name` needs at run time, itself included."""
    seen.add(name)
    for required in _requires(name) - seen:
        _runtime_requirements(required, seen)
    return seen


def _removed_distributions() -> set[str]:
    (run,) = [run for run in _in("install", "RUN") if "uninstall" in run]
    words = run.split("uninstall", 1)[1].split(";", 1)[0].split()
    return {word for word in words if not word.startswith("-")}


def test_distributions_removed_for_size_are_needed_only_by_the_asyncio_kubernetes_client() -> None:
    removed = _removed_distributions()
    assert "aiohttp" in removed
    needed = _runtime_requirements("glusterfs-provisioner", set())
    assert removed <= needed, "a removed distribution is no longer installed at all"
    for name in needed - removed:
        removed_requirements = _requires(name) & removed
        assert name == "kubernetes" or not removed_requirements, (name, removed_requirements)
    assert "rm -rf $site/kubernetes/aio" in _joined()


@pytest.mark.parametrize(
    "command",
    [
        "glusterfs-provisioner --version",
        "glusterfs-provisioner controller --help",
        "glusterfs-provisioner node --help",
        "glusterfs-provisioner audit --help",
        "import provisioner.csi.csi_pb2",
        "mount.glusterfs -V",
        "nsenter --version",
        "umount --version",
    ],
)
def test_the_smoke_stage_runs(command: str) -> None:
    assert any(command in run for run in _in("smoke", "RUN")), command


def test_the_smoke_stage_runs_the_entry_points_as_an_arbitrary_uid_in_group_0() -> None:
    smoke = _stages()["smoke"]
    user_at = smoke.index(("USER", "${SMOKE_UID}:0"))
    later = " ".join(args for kw, args in smoke[user_at:] if kw == "RUN")
    for command in ("controller --help", "node --help", "audit --help", "csi_pb2"):
        assert command in later


@pytest.mark.parametrize("distribution", sorted(TEST_ONLY_MODULES))
def test_the_smoke_stage_refuses_test_only_dependencies(distribution: str) -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]["test"]
    test_extras = {Requirement(r).name for r in extras}
    assert distribution in test_extras
    (check,) = [run for run in _in("smoke", "RUN") if "find_spec" in run]
    assert f"'{TEST_ONLY_MODULES[distribution]}'" in check


def test_the_smoke_stage_refuses_the_test_servers() -> None:
    (check,) = [run for run in _in("smoke", "RUN") if "find_spec" in run]
    assert "'testbed'" in check


def test_entrypoint_is_the_package_console_script() -> None:
    assert _in("runtime", "ENTRYPOINT") == ['["glusterfs-provisioner"]']
    assert "glusterfs-provisioner" in PYPROJECT["project"]["scripts"]


def test_default_user_is_the_non_root_user_the_controller_runs_as() -> None:
    (user,) = _in("runtime", "USER")
    uid, _, gid = user.partition(":")
    objects = base_objects()
    controller = pod_spec(find(objects, "Deployment"))["securityContext"]
    assert int(uid) != 0
    assert (controller["runAsUser"], controller["runAsGroup"]) == (int(uid), int(gid))
    plugin = container(find(objects, "DaemonSet"), "glusterfs-plugin")["securityContext"]
    assert plugin["runAsUser"] == 0
    assert plugin["privileged"] is True


def test_kustomize_image_tag_is_the_package_version() -> None:
    (image,) = kustomization()["images"]
    assert image["name"] == "glusterfs-provisioner"
    assert image["newTag"] == PYPROJECT["project"]["version"]
