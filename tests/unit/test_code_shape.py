"""The shape our code keeps (STYLE.md), checked on its syntax tree: the shipped package
and the test servers alike.

Generated CSI stubs (`csi_pb2*`) are not ours to shape and are left out.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "provisioner"
TESTBED = REPO / "testbed"


def _production_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if not p.name.startswith("csi_pb2"))


def _shaped_modules() -> list[Path]:
    return _production_modules() + sorted(TESTBED.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"


def test_production_code_never_uses_assert_for_control_flow() -> None:
    # `python -O` strips assert statements: a check that must hold has to raise.
    asserts = [
        _where(path, node)
        for path in _production_modules()
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Assert)
    ]
    assert asserts == []


#: STYLE.md: a module is one concept a reader takes in at one sitting…
MODULE_LINES_MAX = 600
#: …and a function one step, read on one screen (decorators and docstring included).
FUNCTION_LINES_MAX = 60


def _long_modules() -> set[str]:
    return {
        str(path.relative_to(REPO))
        for path in _shaped_modules()
        if len(path.read_text(encoding="utf-8").splitlines()) > MODULE_LINES_MAX
    }


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return (node.end_lineno or node.lineno) - first + 1


def _long_functions() -> set[str]:
    return {
        f"{path.relative_to(REPO)} {node.name}"
        for path in _shaped_modules()
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and _function_lines(node) > FUNCTION_LINES_MAX
    }


def test_no_module_is_longer_than_600_lines() -> None:
    assert _long_modules() == set()


def test_no_function_is_longer_than_60_lines() -> None:
    assert _long_functions() == set()


def test_no_code_is_kept_from_the_formatter() -> None:
    # The caps serve the reader; `ruff format` decides the layout, never a marker.
    marked = [
        f"{path.relative_to(REPO)}:{number}"
        for path in _shaped_modules()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "fmt: skip" in line or "fmt: off" in line
    ]
    assert marked == []


def test_the_generated_stubs_are_the_only_modules_left_out() -> None:
    left_out = {p.name for p in PACKAGE.rglob("*.py")} - {p.name for p in _production_modules()}
    assert left_out == {"csi_pb2.py", "csi_pb2_grpc.py"}
