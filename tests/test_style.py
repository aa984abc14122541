"""Size limits of the code base, issue 27's targets: modules of at most 350 lines, functions of at most 60 (the CLI's
argument table aside), at most six parameters (a leading self / cls, *args and **kwargs not counted); and the size
report (tools/sizes.py) that lists the worst five of each and counts parameters as these tests do."""

import ast
from pathlib import Path

import specverify

PACKAGE_DIR = Path(specverify.__file__).resolve().parent
MAX_MODULE_LINES, MAX_FUNCTION_LINES, MAX_PARAMETERS = 350, 60, 6
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
    planted.write_text("def g(a, b, c, d, e, /, f, *, g):\n    pass\n")
    assert parameter_counts(planted) == [("g", MAX_PARAMETERS + 1)]


def parameter_counts(path: Path) -> list[tuple[str, int]]:
    """(name, parameters) of every function and method in ``path``, counted by tools/sizes.py."""
    count = _sizes_tool().parameter_count
    return [(node.name, count(node.args)) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_function_over_the_parameter_limit():
    many = [(str(f.relative_to(PACKAGE_DIR)), name, n) for f in _files() for name, n in parameter_counts(f)
            if n > MAX_PARAMETERS]
    assert not many, many


def _sizes_tool():
    """tools/sizes.py, loaded from its path (tools/ is not a package)."""
    import importlib.util

    path = PACKAGE_DIR.parent / "tools" / "sizes.py"
    spec = importlib.util.spec_from_file_location("sizes_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_size_report_lists_the_worst_five_of_each_kind_largest_first():
    sizes = _sizes_tool()
    report = sizes.worst(PACKAGE_DIR)
    assert list(report) == ["function lines", "module lines", "function parameters"]
    longest = max(n for f in _files() for _, n in function_lengths(f))
    for kind, items in report.items():
        assert len(items) == 5, (kind, items)
        assert [i.size for i in items] == sorted((i.size for i in items), reverse=True), (kind, items)
        assert all(i.where.startswith("specverify/") for i in items), items
    assert report["function lines"][0].size == longest
    assert report["module lines"][0].size == max(len(f.read_text().splitlines()) for f in _files())


def test_the_size_report_counts_what_it_says(tmp_path):
    sizes = _sizes_tool()
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("class C:\n    def m(self, a, /, b, *args, c, **kw):\n        pass\n\n"
                              "    @classmethod\n    def k(cls, a):\n        return a\n\n"
                              "    def j(self, cls):\n        return cls\n")
    (pkg / "sub" / "b.py").write_text("def f(a, b=1, *, c, d=2):\n" + "    x = 1\n" * 6 + "    return x\n")
    report = sizes.worst(pkg)
    assert [(i.where, i.name, i.size) for i in report["function lines"]] == [
        ("pkg/sub/b.py:1", "f", 8), ("pkg/a.py:2", "m", 2), ("pkg/a.py:6", "k", 2), ("pkg/a.py:9", "j", 2)]
    assert [(i.where, i.size) for i in report["module lines"]] == [("pkg/a.py:1", 10), ("pkg/sub/b.py:1", 8),
                                                                   ("pkg/__init__.py:1", 0)]
    assert [(i.name, i.size) for i in report["function parameters"]] == [("f", 4), ("m", 3), ("k", 1), ("j", 1)]
    assert sizes.render(report).splitlines()[:2] == ["function lines:", "  pkg/sub/b.py:1 f  8"]
    assert len(sizes.worst(pkg, top=1)["module lines"]) == 1
