"""Size limits of the code base: modules under 400 lines, functions under 80 (the CLI's argument table aside)."""

import ast
from pathlib import Path

import specverify

PACKAGE_DIR = Path(specverify.__file__).resolve().parent
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80
EXEMPT = {("cli/parser.py", "build_parser")}  # the argument table: one add_argument per line


def function_lengths(path: Path) -> list[tuple[str, int]]:
    """(name, lines) of every function and method in ``path``, decorators excluded."""
    tree = ast.parse(path.read_text())
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _files():
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_no_module_over_the_limit():
    long = {str(f.relative_to(PACKAGE_DIR)): n for f in _files()
            if (n := len(f.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_function_over_the_limit():
    long = [(str(f.relative_to(PACKAGE_DIR)), name, n) for f in _files() for name, n in function_lengths(f)
            if n > MAX_FUNCTION_LINES and (str(f.relative_to(PACKAGE_DIR)), name) not in EXEMPT]
    assert not long, long


def test_the_limits_can_fail(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    planted = tmp_path / "planted.py"
    planted.write_text(f"def f():\n{body}\n")
    assert function_lengths(planted) == [("f", MAX_FUNCTION_LINES + 2)]
