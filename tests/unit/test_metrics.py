"""What both daemons export: Heketi reachability per URL, build info, and the probe endpoints."""

import platform
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from provisioner.heketi.session import server_of
from provisioner.metrics import (
    HeketiRequestMetrics,
    MetricsServer,
    export_build_info,
    glusterfs_client_version,
    package_version,
)

HEKETI = "http://heketi.storage.svc:8080"


def up(registry: CollectorRegistry, url: str = HEKETI) -> float | None:
    return registry.get_sample_value("glusterfs_provisioner_heketi_up", {"url": url})


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["202"], 1),
        (["error"], 0),
        (["error", "200"], 1),  # back: the last request decides
        (["200", "503"], 0),  # a gateway answered for Heketi
        (["502"], 0),
        (["504"], 0),
        (["500"], 1),  # Heketi's own answer to a failed operation
        (["429"], 1),  # busy, but there
        (["401"], 1),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else str(v),
)
def test_heketi_up_follows_the_last_request(
    registry: CollectorRegistry, statuses: list[str], expected: int
) -> None:
    metrics = HeketiRequestMetrics(registry)
    for status in statuses:
        metrics.observe(server=HEKETI, method="GET", route="/volumes", status=status, seconds=0.01)
    assert up(registry) == expected


def test_heketi_up_is_kept_per_url(registry: CollectorRegistry) -> None:
    metrics = HeketiRequestMetrics(registry)
    other = "https://heketi-2:8443"
    metrics.observe(server=HEKETI, method="GET", route="/volumes", status="200", seconds=0.01)
    metrics.observe(server=other, method="GET", route="/volumes", status="error", seconds=5)
    assert (up(registry), up(registry, other)) == (1, 0)


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("http://heketi:8080/volumes/0f3c?x=1", "http://heketi:8080"),
        ("https://admin:secret@heketi.example.com/queue/1", "https://heketi.example.com"),
        ("http://[fd00::1]:8080/hello", "http://[fd00::1]:8080"),
    ],
)
def test_the_url_label_keeps_only_scheme_host_and_port(url: str, server: str) -> None:
    assert server_of(url) == server


def _executable(path: Path, script: str) -> Path:
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    ("script", "version"),
    [
        ('printf "glusterfs 10.3\\nRepository revision: git://git.gluster.org/glusterfs.git\\n"',
         "10.3"),
        ('echo "glusterfs 11.1"', "11.1"),
        ('echo "glusterfs 10.3"; exit 1', "unknown"),
        ('echo "no version here"', "unknown"),
        ("true", "unknown"),
    ],
)  # fmt: skip
def test_the_glusterfs_client_version_is_read_from_its_first_line(
    tmp_path: Path, script: str, version: str
) -> None:
    binary = _executable(tmp_path / "glusterfs", script)
    assert glusterfs_client_version((str(binary), "--version")) == version


def test_a_missing_glusterfs_client_is_reported_as_none(tmp_path: Path) -> None:
    assert glusterfs_client_version((str(tmp_path / "absent"), "--version")) == "none"


def test_build_info_names_the_versions(registry: CollectorRegistry) -> None:
    export_build_info(registry, glusterfs="10.3")
    labels = {
        "version": package_version(),
        "python": platform.python_version(),
        "glusterfs_client": "10.3",
    }
    assert registry.get_sample_value("glusterfs_provisioner_build_info", labels) == 1
    assert package_version() != "unknown"  # the package is installed (make install)


@pytest.fixture
def health() -> Iterator[dict[str, bool]]:
    yield {"healthy": True, "ready": True}


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def test_healthz_and_readyz_answer_what_their_checks_say(
    registry: CollectorRegistry, health: dict[str, bool]
) -> None:
    server = MetricsServer(
        ("127.0.0.1", 0),
        registry=registry,
        ready=lambda: health["ready"],
        healthy=lambda: health["healthy"],
    )
    server.start()
    try:
        assert (_get(server.port, "/healthz"), _get(server.port, "/readyz")) == (200, 200)
        health["ready"] = False
        assert (_get(server.port, "/healthz"), _get(server.port, "/readyz")) == (200, 503)
        health["healthy"] = False
        assert (_get(server.port, "/healthz"), _get(server.port, "/readyz")) == (503, 503)
    finally:
        server.stop()
