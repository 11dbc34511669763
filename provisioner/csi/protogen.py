"""Generate the CSI Python stubs from proto/csi.proto (`make proto`).

Writes csi_pb2.py, csi_pb2.pyi and csi_pb2_grpc.py into provisioner/csi/ with
grpcio-tools' bundled protoc, then rewrites the grpc module's sibling import so
it works as `provisioner.csi.csi_pb2_grpc`. The stubs are committed; a test
regenerates them into a temporary directory and compares (see `normalise`).
"""

import argparse
import re
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent
PROTO_FILE = REPO_ROOT / "proto" / "csi.proto"
GENERATED = ("csi_pb2.py", "csi_pb2.pyi", "csi_pb2_grpc.py")

_GRPC_IMPORT = re.compile(r"^import csi_pb2 as csi__pb2$", re.MULTILINE)
_PACKAGE_IMPORT = "from provisioner.csi import csi_pb2 as csi__pb2"

#: Lines that record which generator versions ran, not what the proto says.
_VERSION_STAMPS = (
    re.compile(r"^# Protobuf Python Version: .*$", re.MULTILINE),
    re.compile(r"^GRPC_GENERATED_VERSION = .*$", re.MULTILINE),
    re.compile(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)", re.DOTALL),
)


class ProtocError(RuntimeError):
    """protoc rejected the proto file."""


def generate(out_dir: Path, *, proto_file: Path = PROTO_FILE) -> list[Path]:
    """Generate the three stub files into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    argv = [
        "grpc_tools.protoc",
        f"--proto_path={proto_file.parent}",
        f"--proto_path={well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        proto_file.name,
    ]
    code = protoc.main(argv)
    if code != 0:
        raise ProtocError(f"protoc failed with exit code {code} for {proto_file}")
    grpc_module = out_dir / "csi_pb2_grpc.py"
    text = grpc_module.read_text(encoding="utf-8")
    fixed, count = _GRPC_IMPORT.subn(_PACKAGE_IMPORT, text)
    if count != 1:
        raise ProtocError("csi_pb2_grpc.py does not import csi_pb2 the way protoc used to")
    grpc_module.write_text(fixed, encoding="utf-8")
    return [out_dir / name for name in GENERATED]


def normalise(text: str) -> str:
    """Stub text with generator version stamps masked, for staleness checks.

    A newer grpcio-tools stamps its own version into the files; that alone does
    not make the committed stubs stale. Any change in the proto still shows.
    """
    for pattern in _VERSION_STAMPS:
        text = pattern.sub("<version stamp>", text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provisioner.csi.protogen",
        description="Regenerate the CSI stubs in provisioner/csi/ from proto/csi.proto.",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=PACKAGE_DIR,
        help=f"where to write {', '.join(GENERATED)} (default: provisioner/csi/)",
    )
    args = parser.parse_args(argv)
    for path in generate(args.out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
