"""Import layering, the whole rule: two rooms, one door.

- ``specverify/sampler/`` (the system under test) never imports ``specverify.harness``, the door or the faces;
- ``specverify/harness/`` (the judge) never imports ``specverify.sampler``, the door or the faces;
- ``specverify/harness/reference/`` also imports no torch;
- the shared plain modules (``errors``, ``specs``, ``contract``, ``_validate`` and the package ``__init__``) import
  neither half;
- only the door (``bridge``) and the faces (``cli``, ``pytest_plugin``, ``testing``, ``strategies``, ``study``,
  ``calibration``, ``benchmarks``)
  see both halves; every module of the package is in exactly one of these places.

Checked by a static AST scan (imports, relative imports resolved against the file's package, and
``importlib.import_module`` / ``__import__`` calls with a literal name, at any depth: lazy imports count), by a
subprocess that blocks torch and the sampler side and runs the reference side, and by planting a violation of
each part of the rule, which the scan must catch.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import specverify

PACKAGE_DIR = Path(specverify.__file__).resolve().parent
SHARED = ("specverify", "specverify.errors", "specverify.specs", "specverify._validate", "specverify.contract",
          "specverify._files")
DOOR = ("specverify.bridge", "specverify.bridge.checks", "specverify.bridge.ours", "specverify.bridge.registry",
        "specverify.bridge.setups", "specverify.bridge.stress_configs")
FACES = ("specverify.cli", "specverify.cli.parser", "specverify.cli.commands", "specverify.cli.sharding",
         "specverify.cli.check_stress", "specverify.cli.mutants", "specverify.cli.check", "specverify.cli.common",
         "specverify.cli.__main__",
         "specverify.pytest_plugin", "specverify.testing", "specverify.strategies", "specverify.study",
         "specverify.calibration", "specverify.benchmarks")
OUTSIDE = DOOR + FACES  # what neither half may import
RULES = {  # room -> forbidden import prefixes
    "sampler": ("specverify.harness", *OUTSIDE),
    "harness": ("specverify.sampler", *OUTSIDE),
    "reference": ("torch", "specverify.sampler", *OUTSIDE),
    "shared": ("torch", "specverify.sampler", "specverify.harness", *OUTSIDE),
    "face": ("specverify.sampler",),  # the faces reach our sampler through the door only (bridge, bridge.registry)
}
FORBIDDEN = RULES["reference"]  # what the blocked subprocess blocks


def _module_name(path: Path) -> str:
    """Dotted module name of a file inside the specverify package (``specverify.harness.reference.laws``)."""
    parts = path.resolve().relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    """Where a module lives: sampler, reference, harness, shared, door or face."""
    if module.startswith("specverify.harness.reference"):
        return "reference"
    for prefix in ("sampler", "harness"):
        if module == f"specverify.{prefix}" or module.startswith(f"specverify.{prefix}."):
            return prefix
    if module in SHARED:
        return "shared"
    if module in DOOR:
        return "door"
    if module in FACES:
        return "face"
    raise AssertionError(f"{module} is in no room: put it under sampler/ or harness/, or name it a door or face")


def _is_forbidden(name: str, forbidden) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


def _resolve_relative(module: str | None, level: int, importer: str, is_package: bool) -> str:
    package = importer if is_package else importer.rpartition(".")[0]
    base = package.split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imported_names(path: Path, module_name: str) -> list[tuple[int, str]]:
    """Every module name ``path`` imports, at any depth, as (line, name)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    is_package = Path(path).name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(node.module, node.level, module_name, is_package)
            # `from specverify import bridge` imports specverify.bridge
            names = [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names = [arg.value]
        found += [(node.lineno, n) for n in names]
    return found


def violations(path: Path, module_name: str | None = None) -> list[str]:
    """Every import in ``path`` that breaks the rule of its room, as 'file:line: name' strings."""
    module_name = module_name or _module_name(path)
    r = room(module_name)
    forbidden = RULES.get(r, ())
    return [f"{path}:{line}: {name} (room {r})" for line, name in imported_names(path, module_name)
            if _is_forbidden(name, forbidden)]


def _package_files() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def test_every_module_is_in_one_room_and_keeps_its_rule():
    files = _package_files()
    rooms = {f: room(_module_name(f)) for f in files}
    for r in ("sampler", "harness", "reference", "shared", "door", "face"):
        assert r in rooms.values(), f"no module in room {r}"
    found = [v for f in files for v in violations(f)]
    assert not found, "\n".join(found)


def test_the_door_and_the_faces_are_the_only_modules_that_see_both_halves():
    both = []
    for f in _package_files():
        name = _module_name(f)
        seen = {n.split(".")[1] for _, n in imported_names(f, name) if n.count(".") >= 1
                and n.split(".")[0] == "specverify" and n.split(".")[1] in ("sampler", "harness")}
        if seen == {"sampler", "harness"}:
            both.append(name)
    assert both and set(both) <= set(OUTSIDE), both
    assert "specverify.bridge.setups" in both  # the problem registry: torch side and ground truth


def _runtime_tree(path: Path) -> ast.Module:
    """``path`` parsed, without the bodies of ``if TYPE_CHECKING:`` blocks (never run, so no edge of the graph)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    for node in ast.walk(tree):
        test = getattr(node, "test", None) if isinstance(node, ast.If) else None
        if test is not None and (getattr(test, "id", None) or getattr(test, "attr", None)) == "TYPE_CHECKING":
            node.body = [ast.Pass()]
    return tree


def import_edges(path: Path, module_name: str, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``path`` imports at run time, at any depth (lazy imports count): ``from P
    import a`` is an edge to the module P.a where there is one, else to P (it reads an attribute of P)."""
    is_package = Path(path).name == "__init__.py"
    out = set()
    for node in ast.walk(_runtime_tree(path)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(node.module, node.level, module_name, is_package) if node.level else node.module
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            hit = next((".".join(parts[:k]) for k in range(len(parts), 0, -1) if ".".join(parts[:k]) in modules), None)
            if hit is not None and hit != module_name:
                out.add(hit)
    return out


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_structure_has_no_import_cycle():
    files = {_module_name(f): f for f in _package_files()}
    graph = {m: import_edges(f, m, set(files)) for m, f in files.items()}
    assert not import_cycles(graph), import_cycles(graph)


def test_a_planted_import_cycle_is_caught(tmp_path):
    files = {_module_name(f): f for f in _package_files()}
    planted = tmp_path / "ours.py"  # bridge.ours reading an attribute of the bridge package at run time
    planted.write_text(files["specverify.bridge.ours"].read_text() + "\n\ndef f():\n    from specverify.bridge "
                       "import check\n")
    files["specverify.bridge.ours"] = planted
    graph = {m: import_edges(f, m, set(files)) for m, f in files.items()}
    assert ["specverify.bridge", "specverify.bridge.ours"] in [
        [m for m in c if m in ("specverify.bridge", "specverify.bridge.ours")] for c in import_cycles(graph)]


def layout_names(text: str) -> set[str]:
    """The words of docs/layout.md's tree (its first ```text block)."""
    start = text.index("```text")
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text[start:text.index("```", start + 7)]))


def unnamed_modules(text: str) -> list[str]:
    """The modules docs/layout.md's tree (``text``) does not name (the subpackages drafters/, problems/ and
    reference/ are named as a whole)."""
    names = layout_names(text)
    return [str(f.relative_to(PACKAGE_DIR)) for f in _package_files()
            if f.stem not in ("__init__", "__main__") and f.parent.name not in ("drafters", "problems", "reference")
            and f.stem not in names]


def test_the_layout_page_names_every_module():
    """docs/layout.md's tree is drawn from the code: it names every module; a tree that leaves one out fails."""
    text = (PACKAGE_DIR.parent / "docs" / "layout.md").read_text()
    assert not unnamed_modules(text), f"docs/layout.md does not name {unnamed_modules(text)}"
    assert unnamed_modules(text.replace("ledger", "")) == ["harness/ledger.py"]


PLANTED = [  # (module the violation is planted in, line)
    ("specverify.sampler.planted", "from specverify.harness import suite"),
    ("specverify.sampler.drafters.planted", "import specverify.harness.stats.mmd"),
    ("specverify.sampler.planted", "def f():\n    from specverify.bridge import make_setup"),
    ("specverify.sampler.planted", "from ..harness import contracts"),
    ("specverify.harness.planted", "from specverify.sampler.chains import ddpm"),
    ("specverify.harness.stats.planted", "from specverify.sampler import speculative"),
    ("specverify.harness.planted", "import importlib; importlib.import_module('specverify.sampler.coupling')"),
    ("specverify.harness.planted", "from specverify import cli"),
    ("specverify.harness.reference.planted", "import torch"),
    ("specverify.harness.reference.planted", "from torch import nn"),
    ("specverify.harness.reference.planted", "from ...sampler import noise"),
    ("specverify.harness.reference.planted", "def f():\n    import specverify.sampler.drafters"),
    ("specverify.specs", "import specverify.harness.reference"),
    ("specverify.errors", "from specverify.sampler import coupling"),
    ("specverify._validate", "import torch"),
    ("specverify.cli.commands", "def f():\n    from specverify.sampler.mutants import MUTANTS"),
    ("specverify.study", "import specverify.sampler.speculative"),
]


@pytest.mark.parametrize(("module", "line"), PLANTED)
def test_a_planted_violation_of_each_part_of_the_rule_is_caught(tmp_path, module, line):
    planted = tmp_path / ("__init__.py" if module == "specverify" else "planted.py")
    planted.write_text(f"import numpy as np\n{line}\n")
    assert violations(planted, module), (module, line)


@pytest.mark.parametrize("module", ["specverify.sampler.planted", "specverify.harness.planted",
                                    "specverify.harness.reference.planted", "specverify.specs"])
def test_allowed_imports_pass_the_scan(tmp_path, module):
    clean = tmp_path / "clean.py"
    clean.write_text("import numpy as np\nfrom specverify.specs import GMMSpec\nfrom specverify.errors import "
                     "ChainError\nimport torchvision_like_name_is_not_torch\n")
    assert not violations(clean, module)


def test_a_module_in_no_room_is_refused():
    with pytest.raises(AssertionError, match="in no room"):
        room("specverify.loose_module")


_BLOCKED_RUN = textwrap.dedent("""
    import importlib.abc, sys

    FORBIDDEN = {forbidden!r}
    attempts = []

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                attempts.append(name)
                raise ImportError(f"{{name}} is blocked: the reference side must not import it")
            return None

    # A finder, not sys.modules["torch"] = None: scipy's array_api_compat treats any "torch" key in sys.modules as
    # an imported torch and calls getattr(sys.modules["torch"], "Tensor"), so the None marker breaks scipy.stats.
    sys.meta_path.insert(0, Blocker())

    import jax
    import numpy as np
    import specverify.harness.reference as R
    from specverify.specs import GaussianSpec, GMMSpec, LogisticSpec, beta_schedule

    assert jax.config.jax_enable_x64
    spec = GaussianSpec.default(4)
    tr = R.diffusion_transition(beta_schedule("linear", 10), "ddim", eta=0.5)
    law = R.gaussian_chain_law(spec, tr)
    x = R.sample_diffusion(jax.random.PRNGKey(0), R.gaussian_eps(spec, tr.betas), tr, (8, 4))
    assert x.shape == (8, 4) and np.isfinite(law.final.whiten(x)).all()
    eps = R.gmm_eps(GMMSpec.default(4), tr.betas)(x, np.full(8, 3))
    assert eps.shape == (8, 4)
    assert np.isfinite(R.logistic_score(LogisticSpec.breast_cancer(dim=3))(np.zeros((2, 3)))).all()
    loaded = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)
                    and sys.modules[m] is not None)
    assert not loaded, loaded
    print("OK", attempts)
""")


def test_reference_imports_and_runs_with_torch_and_the_sampler_side_blocked():
    code = _BLOCKED_RUN.format(forbidden=FORBIDDEN)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK"), proc.stdout


def test_the_blocker_really_blocks():
    """The subprocess's blocker is not vacuous: under it, the sampler side fails to import."""
    code = _BLOCKED_RUN.format(forbidden=FORBIDDEN).split("import jax\n")[0] + "import specverify.sampler.chains\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "is blocked" in proc.stderr, proc.stdout + proc.stderr


def test_the_rooms_tool_sorts_modules_as_this_rule_does():
    """tools/rooms.py (modules and lines per room at a revision) puts every module in the room this test does."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rooms_under_test", PACKAGE_DIR.parent / "tools" / "rooms.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    same = {"sampler": "sampler/", "harness": "harness/", "reference": "harness/", "shared": "shared",
            "door": "bridge (door)", "face": "faces"}
    wrong = [(str(f), tool.room(f.relative_to(PACKAGE_DIR).as_posix())) for f in _package_files()
             if tool.room(f.relative_to(PACKAGE_DIR).as_posix()) != same[room(_module_name(f))]]
    assert not wrong, wrong
