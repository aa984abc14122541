"""Import layering: the reference side never sees the sampler side.

Nothing under ``specverify/reference/`` may import torch or ``specverify.{chains, sampling, coupling, drafters,
problems, noise, cli}``; neither may the modules it reads (``specs``, ``errors``, ``_validate``) or the package
``__init__`` that every import of it runs. Checked three ways: (a) a static AST scan of those files
(imports, relative imports resolved against the file's package, and ``importlib.import_module`` /
``__import__`` calls with a literal name); (b) a subprocess that blocks torch and the sampler modules (a
meta-path finder that raises ImportError), imports ``specverify.reference`` and runs a few of its functions;
(c) the scanner catches planted violations.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import specverify

PACKAGE_DIR = Path(specverify.__file__).resolve().parent
FORBIDDEN_SUBMODULES = ("chains", "sampling", "coupling", "drafters", "problems", "noise", "cli")
FORBIDDEN = ("torch", *(f"specverify.{m}" for m in FORBIDDEN_SUBMODULES))


def _reference_side_files() -> list[Path]:
    files = sorted((PACKAGE_DIR / "reference").rglob("*.py"))
    files += [PACKAGE_DIR / name for name in ("__init__.py", "specs.py", "errors.py", "_validate.py")]
    return files


def _module_name(path: Path) -> str:
    """Dotted module name of a file inside the specverify package (``specverify.reference.laws``)."""
    parts = path.resolve().relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _resolve_relative(module: str | None, level: int, importer: str, is_package: bool) -> str:
    package = importer if is_package else importer.rpartition(".")[0]
    base = package.split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def forbidden_imports(path: Path, module_name: str | None = None) -> list[str]:
    """Every import in ``path`` of torch or of a sampler-side module, as 'file:line: name' strings."""
    source = Path(path).read_text()
    tree = ast.parse(source, filename=str(path))
    importer = module_name or "specverify._scanned"
    is_package = Path(path).name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(node.module, node.level, importer, is_package)
            # `from specverify import chains` imports specverify.chains
            names = [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if fname in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names = [arg.value]
        found += [f"{path}:{node.lineno}: {n}" for n in names if _is_forbidden(n)]
    return found


def test_reference_side_files_import_nothing_from_the_sampler_side():
    files = _reference_side_files()
    assert len(files) >= 10 and all(f.exists() for f in files)
    violations = [v for f in files for v in forbidden_imports(f, _module_name(f))]
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("line", [
    "import torch",
    "import torch.nn as nn",
    "from torch import nn",
    "from specverify.chains import ddpm",
    "from specverify import sampling",
    "import specverify.problems.gmm",
    "from ..coupling import reflection",
    "from .. import noise",
    "import importlib; importlib.import_module('torch')",
    "def f():\n    import specverify.drafters",
])
def test_scanner_catches_a_planted_violation(tmp_path, line):
    planted = tmp_path / "planted.py"
    planted.write_text(f"import numpy as np\n{line}\n")
    assert forbidden_imports(planted, "specverify.reference.planted")
    clean = tmp_path / "clean.py"
    clean.write_text("import numpy as np\nfrom specverify.specs import GMMSpec\nfrom .laws import gaussian_kl\n"
                     "import torchvision_like_name_is_not_torch\n")
    assert not forbidden_imports(clean, "specverify.reference.clean")


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
    import specverify.reference as R
    from specverify.specs import GaussianSpec, GMMSpec, LogisticSpec, beta_schedule

    assert jax.config.jax_enable_x64
    spec = GaussianSpec.default(4)
    tr = R.diffusion_transition(beta_schedule("linear", 10), "ddim", eta=0.5)
    law = R.gaussian_chain_law(spec, tr)
    x = R.sample_diffusion(jax.random.PRNGKey(0), R.gaussian_eps(spec, tr.betas), tr, 8, 4)
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
    code = _BLOCKED_RUN.format(forbidden=FORBIDDEN).split("import jax\n")[0] + "import specverify.chains\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "is blocked" in proc.stderr, proc.stdout + proc.stderr
