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


#: STYLE.md: a reader finds a module's responsibility in one sitting…
MODULE_LINES_MAX = 600
#: …and a function's in one screen (decorators and docstring included).
FUNCTION_LINES_MAX = 60


def test_no_production_module_is_longer_than_600_lines() -> None:
    long_modules = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in _production_modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES_MAX
    }
    assert long_modules == {}


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return (node.end_lineno or node.lineno) - first + 1


def test_no_production_function_is_longer_than_60_lines() -> None:
    long_functions = {
        f"{_where(path, node)} {node.name}": lines
        for path in _production_modules()
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (lines := _function_lines(node)) > FUNCTION_LINES_MAX
    }
    assert long_functions == {}


def test_the_generated_stubs_are_the_only_modules_left_out() -> None:
    left_out = {p.name for p in PACKAGE.rglob("*.py")} - {p.name for p in _production_modules()}
    assert left_out == {"csi_pb2.py", "csi_pb2_grpc.py"}
