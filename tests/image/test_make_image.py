"""`make image` from a fresh clone of HEAD: the OCI archive it writes, read back.

Needs root, podman, debootstrap and the network to Debian's packages and PyPI;
a couple of minutes. Runs only with IMAGE_BUILD_TEST=1 (`make image-test`,
which `.ci/run` runs after `make test`); there a missing tool fails the test
instead of skipping it.
"""

import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Seconds one `make image` may take on a loaded 2-core machine (debootstrap included).
BUILD_TIMEOUT_S = 1800
SIZE_BUDGET_MB = 250
#: OpenShift hands namespaces UID blocks from here up.
OPENSHIFT_UID_FLOOR = 1_000_000_000
#: Paths no file of the image may have: test servers, test-only packages.
FORBIDDEN_IN_IMAGE = re.compile(
    r"(^|/)(testbed|tests?/unit|pytest|_pytest|hypothesis|cryptography|grpc_tools)(/|$)"
)

if os.environ.get("IMAGE_BUILD_TEST") != "1":
    pytest.skip(
        "builds a container image (minutes, root, podman): run `make image-test`",
        allow_module_level=True,
    )


@dataclass(frozen=True)
class Build:
    clone: Path
    image: str
    archive: Path
    output: str


def _make_image(clone: Path, image: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(clone), "image", f"IMAGE={image}"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    for tool in ("podman", "debootstrap", "git", "make"):
        assert shutil.which(tool), f"{tool} is not installed (.ci/run installs it)"
    clone = tmp_path_factory.mktemp("fresh") / "glusterfs-provisioner"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(REPO), str(clone)], check=True)
    tag = secrets.token_hex(4)
    image = f"localhost/glusterfs-provisioner-test:{tag}"
    try:
        result = _make_image(clone, image)
        output = result.stdout + result.stderr
        print(output)
        assert result.returncode == 0, output
        archive = clone / "build" / "image" / f"glusterfs-provisioner-test-{tag}.oci.tar"
        yield Build(clone=clone, image=image, archive=archive, output=output)
    finally:
        subprocess.run(["podman", "rmi", "--force", image], capture_output=True, check=False)


class Archive:
    """An OCI image layout in a tar, as `podman save --format oci-archive` writes it."""

    def __init__(self, path: Path) -> None:
        self._tar = tarfile.open(path)  # noqa: SIM115 (closed by the fixture)
        (self.entry,) = self.json("index.json")["manifests"]
        self.manifest = self.blob_json(self.entry["digest"])
        self.config = self.blob_json(self.manifest["config"]["digest"])

    def close(self) -> None:
        self._tar.close()

    def json(self, name: str) -> Any:
        member = self._tar.extractfile(name)
        assert member is not None, name
        return json.load(member)

    def blob_json(self, digest: str) -> Any:
        return self.json("blobs/" + digest.replace(":", "/"))

    def layer_files(self, digest: str) -> dict[str, bytes | None]:
        """Path → content (regular files under usr/share/glusterfs-provisioner only)."""
        blob = self._tar.extractfile("blobs/" + digest.replace(":", "/"))
        files: dict[str, bytes | None] = {}
        with tarfile.open(fileobj=blob, mode="r:*") as layer:
            for member in layer:
                content = None
                if member.isfile() and member.name.startswith("usr/share/glusterfs-provisioner/"):
                    extracted = layer.extractfile(member)
                    content = extracted.read() if extracted else None
                files[member.name] = content
        return files

    def all_files(self) -> dict[str, bytes | None]:
        files: dict[str, bytes | None] = {}
        for layer in self.manifest["layers"]:
            files.update(self.layer_files(layer["digest"]))
        return files


@pytest.fixture(scope="module")
def archive(build: Build) -> Iterator[Archive]:
    assert build.archive.is_file(), build.output
    opened = Archive(build.archive)
    yield opened
    opened.close()


def _printed(output: str, label: str) -> str:
    match = re.search(rf"^{label}\s+(.+)$", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return match.group(1)


def test_make_image_writes_the_tagged_image_as_an_oci_archive(
    build: Build, archive: Archive
) -> None:
    assert archive.entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert _printed(build.output, "image") == build.image
    assert _printed(build.output, "digest") == archive.entry["digest"]
    assert _printed(build.output, "archive").startswith(str(build.archive.relative_to(build.clone)))


def test_the_output_says_how_to_load_and_push_the_archive(build: Build) -> None:
    relative = build.archive.relative_to(build.clone)
    assert f"podman load -i {relative}" in build.output
    assert f"skopeo copy oci-archive:{relative} docker://" in build.output


def test_the_smoke_stage_ran_the_entry_points_as_a_random_uid_in_group_0(
    archive: Archive,
) -> None:
    files = archive.layer_files(archive.manifest["layers"][-1]["digest"])
    record = files["usr/share/glusterfs-provisioner/smoke-passed"]
    assert record is not None
    match = re.fullmatch(rb"uid=(\d+) gid=0 glusterfs-provisioner \S+ glusterfs \S+\n", record)
    assert match, record
    assert int(match.group(1)) >= OPENSHIFT_UID_FLOOR


def test_the_image_runs_the_console_script_as_a_non_root_user(archive: Archive) -> None:
    config = archive.config["config"]
    assert config["Entrypoint"] == ["glusterfs-provisioner"]
    uid, _, _gid = config["User"].partition(":")
    assert int(uid) != 0
    assert any(e.startswith("PATH=/opt/glusterfs-provisioner/bin:") for e in config["Env"])


def test_the_image_fits_its_size_budget(build: Build) -> None:
    inspected = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", build.image],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    size_mb = int(inspected.stdout) / 1_000_000
    print(f"image size: {size_mb:.1f} MB uncompressed")
    assert size_mb <= SIZE_BUDGET_MB
    assert _printed(build.output, "size").endswith(f"(budget {SIZE_BUDGET_MB} MB)")


def test_no_file_of_the_image_is_test_code_or_a_test_only_package(archive: Archive) -> None:
    names = archive.all_files()
    site = "opt/glusterfs-provisioner/lib/python3.11/site-packages/"
    assert f"{site}provisioner/cli.py" in names
    assert f"{site}kubernetes/client/api_client.pyc" in names
    forbidden = sorted(n for n in names if n.startswith(site) and FORBIDDEN_IN_IMAGE.search(n))
    assert forbidden == []


def test_a_second_make_image_reuses_the_cached_base(build: Build) -> None:
    again = _make_image(build.clone, build.image)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert re.search(r"^==> base \S+ \(cached\)$", output, re.MULTILINE), output
    assert "debootstrap --variant" not in output
