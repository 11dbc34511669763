"""The shape the production code keeps (STYLE.md), checked on its syntax tree.

Generated CSI stubs (`csi_pb2*`) are not ours to shape and are left out.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "provisioner"


def _production_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if not p.name.startswith("csi_pb2"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"


def test_production_code_never_uses_assert_for_control_flow() -> None:
    # `python -O` strips assert statements: a check that must hold has to raise.
    asserts = [
        _where(path, node)
        for path in _production_modules()
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Assert)
    ]
    assert asserts == []
