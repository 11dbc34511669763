"""What the shipped package may contain and import.

The test servers, the demo and their test-only dependencies live in `testbed/`
beside the package: the wheel (and so the image) must never carry them, and no
production module may import them.
"""

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "provisioner"


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
    assert (REPO / "testbed" / "heketi" / "server.py").is_file()


def test_test_only_dependencies_are_not_runtime_dependencies() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = " ".join(project["dependencies"]).lower()
    for test_only in ("cryptography", "pytest", "hypothesis", "grpcio-tools"):
        assert test_only not in runtime, test_only


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
