"""Size report of a package: the longest functions, the longest modules, the functions with the most parameters.

    python tools/sizes.py                 # specverify/, the worst five of each
    python tools/sizes.py DIR --top 10    # another package folder, the worst ten

Function length counts the lines from ``def`` to the last line of the body (decorators excluded; a nested
function counts on its own and inside its parent). Parameters are the positional(-only) and keyword-only ones,
without a leading ``self`` / ``cls``, ``*args`` and ``**kwargs``. Ties are listed in path order. Issue 27's
targets, which ``tests/test_style.py`` enforces: no function over 60 lines (the CLI's argument table aside), no
module over 350 lines, at most six parameters.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import NamedTuple

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "specverify"
TOP = 5
KINDS = ("function lines", "module lines", "function parameters")


class Item(NamedTuple):
    """One entry of the report: where (``path:line``, path relative to the package's parent), the function's name
    (empty for a module) and its size."""

    where: str
    name: str
    size: int


def parameter_count(args: ast.arguments) -> int:
    """Positional(-only) and keyword-only parameters, without a leading self / cls, *args and **kwargs."""
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    positional = [a.arg for a in (*args.posonlyargs, *args.args)]
    return len(names) - bool(positional and positional[0] in ("self", "cls"))


def measure(package_dir: Path) -> dict[str, list[Item]]:
    """Every function and module of ``package_dir`` (recursively), by kind, unsorted."""
    package_dir = Path(package_dir).resolve()
    found: dict[str, list[Item]] = {kind: [] for kind in KINDS}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).as_posix()
        text = path.read_text()
        found["module lines"].append(Item(f"{rel}:1", "", len(text.splitlines())))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{rel}:{node.lineno}"
                found["function lines"].append(Item(where, node.name, node.end_lineno - node.lineno + 1))
                found["function parameters"].append(Item(where, node.name, parameter_count(node.args)))
    return found


def worst(package_dir: Path = PACKAGE_DIR, top: int = TOP) -> dict[str, list[Item]]:
    """The ``top`` largest items of each kind, largest first (ties in path and line order)."""
    def key(item: Item):
        path, line = item.where.rsplit(":", 1)
        return -item.size, path, int(line)

    return {kind: sorted(items, key=key)[:top] for kind, items in measure(package_dir).items()}


def render(report: dict[str, list[Item]]) -> str:
    """Plain text: a heading per kind, then one line per item: ``path:line name  size`` (no name for a module)."""
    lines = []
    for kind, items in report.items():
        lines.append(f"{kind}:")
        lines += [f"  {' '.join(filter(None, (item.where, item.name)))}  {item.size}" for item in items]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", nargs="?", type=Path, default=PACKAGE_DIR)
    parser.add_argument("--top", type=int, default=TOP, help="how many of each kind (default %(default)s)")
    args = parser.parse_args(argv)
    print(render(worst(args.package_dir, args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
