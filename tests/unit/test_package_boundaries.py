"""What the shipped package may contain and import.

The test servers, the demo and their test-only dependencies live in `testbed/`
beside the package: the wheel (and so the image) must never carry them, and no
production module may import them.
"""

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "provisioner"
WHEEL_BUILD_TIMEOUT_S = 180


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _production_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_production_module_imports_the_test_servers() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(
            m for m in _imported_modules(path) if m == "testbed" or m.startswith("testbed.")
        )
        for path in _production_modules()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_package_directory_holds_no_test_servers() -> None:
    assert not (PACKAGE / "testing").exists()
    assert (REPO / "testbed" / "heketi_server.py").is_file()


def test_test_only_dependencies_are_not_runtime_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for test_only in ("cryptography", "pytest", "hypothesis", "grpcio-tools"):
        assert test_only not in runtime, test_only


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


def test_audit_and_migrate_never_import_the_controller_package() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(
            m
            for m in _imported_modules(path)
            if m == "provisioner.controller" or m.startswith("provisioner.controller.")
        )
        for admin in ("audit", "migrate")
        for path in sorted((PACKAGE / admin).rglob("*.py"))
    }
    assert (PACKAGE / "audit").is_dir()
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_kubernetes_adapter_knows_nothing_of_the_controller() -> None:
    imported = set().union(*(_imported_modules(p) for p in (PACKAGE / "kube").rglob("*.py")))
    assert not [m for m in imported if m.startswith(("provisioner.controller", "provisioner.csi"))]


def test_only_the_entry_point_imports_the_command_line_module() -> None:
    importers = sorted(
        str(path.relative_to(REPO))
        for path in _production_modules()
        if "provisioner.cli" in _imported_modules(path)
        or any(
            isinstance(node, ast.ImportFrom)
            and node.module == "provisioner"
            and "cli" in {alias.name for alias in node.names}
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    )
    assert importers == ["provisioner/__main__.py"]


def test_the_command_line_module_loads_its_commands_by_import_statements() -> None:
    imported = _imported_modules(PACKAGE / "cli.py")
    assert "importlib" not in imported
    assert {
        "provisioner.csi",
        "provisioner.controller",
        "provisioner.audit",
        "provisioner.migrate",
    } <= imported
