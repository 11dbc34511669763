"""The wheel users install (and the image is built from) holds the package and nothing else.

Beside the image test: both are about what we ship. This one needs only pip, so it
runs in `make test`; `make image-test` runs it again with the image.
"""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEEL_BUILD_TIMEOUT_S = 180


def test_the_built_wheel_ships_the_package_and_no_test_code(tmp_path: Path) -> None:
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
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=WHEEL_BUILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("glusterfs_provisioner-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "provisioner/cli.py" in names
    assert "provisioner/csi/csi_pb2.py" in names
    shipped_tops = {name.split("/", 1)[0] for name in names if "/" in name}
    assert shipped_tops <= {"provisioner"} | {n for n in shipped_tops if n.endswith(".dist-info")}
    assert not [n for n in names if n.startswith(("testbed/", "tests/", "bench/"))]
    assert not [n for n in names if "/testing/" in n or n.endswith("_server.py")]
