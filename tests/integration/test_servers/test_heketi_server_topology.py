"""The Heketi test server started on a topology file (`--topology`), as heketi-cli loads one."""

import json
import subprocess
import sys
from pathlib import Path

import requests

TOPOLOGY = {
    "clusters": [
        {
            "nodes": [
                {
                    "node": {
                        "hostnames": {"manage": ["node-a"], "storage": ["10.0.0.1"]},
                        "zone": 7,
                        "tags": {"rack": "r1"},
                    },
                    "devices": ["/dev/sdb", {"name": "/dev/sdc", "tags": {"disktype": "ssd"}}],
                }
            ]
        }
    ]
}


def run_server(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "testbed.heketi", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_topology_files_zones_tags_and_device_sizes_are_served(tmp_path: Path) -> None:
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(TOPOLOGY))
    server = run_server("--no-auth", "--topology", str(path), "--device-gib", "40")
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        (cluster,) = requests.get(f"{url}/clusters", timeout=10).json()["clusters"]
        (node_id,) = requests.get(f"{url}/clusters/{cluster}", timeout=10).json()["nodes"]
        node = requests.get(f"{url}/nodes/{node_id}", timeout=10).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (node["zone"], node["tags"], node["hostnames"]["storage"]) == (
        7,
        {"rack": "r1"},
        ["10.0.0.1"],
    )
    devices = [(d["name"], d.get("tags"), d["storage"]["total"]) for d in node["devices"]]
    assert devices == [
        ("/dev/sdb", None, 40 * 1024 * 1024),
        ("/dev/sdc", {"disktype": "ssd"}, 40 * 1024 * 1024),
    ]


def test_a_file_that_is_no_topology_stops_the_server_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "topology.json"
    path.write_text('{"nodes": []}')
    server = run_server("--no-auth", "--topology", str(path))
    _, stderr = server.communicate(timeout=60)
    assert server.returncode == 2
    assert stderr.strip() == f'testbed.heketi: {path}: a topology file holds {{"clusters": [...]}}'
