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
MODULE_LINES_MAX = 400
#: …and a function's in one screen (decorators and docstring included).
FUNCTION_LINES_MAX = 40


def test_no_production_module_is_longer_than_400_lines() -> None:
    long_modules = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in _production_modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES_MAX
    }
    assert long_modules == {}


def _function_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return (node.end_lineno or node.lineno) - first + 1


def test_no_production_function_is_longer_than_40_lines() -> None:
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


#: testbed/ (the test servers, demos, chaos soak) keeps the same shape (STYLE.md layout),
#: with the caps that serve a reader rather than a number: a module in one sitting…
TESTBED = PACKAGE.parent / "testbed"
TESTBED_MODULE_LINES_MAX = 600
#: …a function in one screen.
TESTBED_FUNCTION_LINES_MAX = 60


def _testbed_modules() -> list[Path]:
    return sorted(TESTBED.rglob("*.py"))


def test_no_testbed_module_is_longer_than_600_lines() -> None:
    long_modules = {
        str(path.relative_to(TESTBED.parent)): lines
        for path in _testbed_modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > TESTBED_MODULE_LINES_MAX
    }
    assert long_modules == {}


def test_no_testbed_function_is_longer_than_60_lines() -> None:
    long_functions = {
        f"{path.relative_to(TESTBED.parent)}:{node.lineno} {node.name}": lines
        for path in _testbed_modules()
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (lines := _function_lines(node)) > TESTBED_FUNCTION_LINES_MAX
    }
    assert long_functions == {}


def test_no_testbed_code_is_kept_from_the_formatter() -> None:
    # `# fmt: skip` / `# fmt: off` pack code past ruff format to fit a size cap.
    kept = [
        f"{path.relative_to(TESTBED.parent)}:{number}"
        for path in _testbed_modules()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "fmt: skip" in line or "fmt: off" in line
    ]
    assert kept == []
