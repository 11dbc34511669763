"""deploy/Dockerfile: one slim Python 3.11 / Debian 12 image for both roles.

No container engine runs on the test machines, so the image is checked by
reading the Dockerfile, and its build step is replayed on exactly the files it
copies: they must be enough to build the package wheel with its entry point.
"""

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

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
WHEEL_BUILD_TIMEOUT_S = 120


def _instructions(keyword: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1].strip()
        for line in joined.splitlines()
        if line.split(None, 1)[:1] == [keyword]
    ]


def _copied_sources() -> list[str]:
    sources: list[str] = []
    for args in _instructions("COPY"):
        if args.startswith("--from="):
            continue
        sources.extend(args.split()[:-1])
    return sources


def test_base_image_is_python_3_11_slim_on_debian_12() -> None:
    assert _instructions("ARG") == ["PYTHON_IMAGE=python:3.11-slim-bookworm"]
    assert _instructions("FROM") == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]


def test_image_installs_the_gluster_fuse_client_without_recommends() -> None:
    (install,) = [run for run in _instructions("RUN") if "apt-get install" in run]
    assert "--no-install-recommends" in install
    assert "glusterfs-client" in install.split()
    assert "rm -rf /var/lib/apt/lists/*" in install


def test_entrypoint_is_the_package_console_script() -> None:
    assert _instructions("ENTRYPOINT") == ['["glusterfs-provisioner"]']
    assert "glusterfs-provisioner" in PYPROJECT["project"]["scripts"]


def test_default_user_is_the_non_root_user_the_controller_runs_as() -> None:
    (user,) = _instructions("USER")
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


def test_build_context_filter_lets_every_copied_source_through() -> None:
    patterns = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert "*" in patterns
    for source in _copied_sources():
        assert source.rstrip("/") in allowed, f"{source} is copied but excluded from the context"
        assert not any(fnmatch.fnmatch(source, p) for p in patterns if p.startswith("**")), source


def test_copied_sources_alone_build_the_package_wheel(tmp_path: Path) -> None:
    if shutil.which("pip", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("pip is not available in this environment")
    context = tmp_path / "context"
    context.mkdir()
    for source in _copied_sources():
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, context / source)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=WHEEL_BUILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "wheels").glob("glusterfs_provisioner-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "provisioner/cli.py" in names
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "glusterfs-provisioner = provisioner.cli:main" in text
