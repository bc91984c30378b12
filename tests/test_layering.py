"""The layout of the repository: no module imports a layer above its own, and every source
file keeps to 75-400 lines.

Layers, from the bottom: ``engine``; ``data`` and ``optim``, each on the engine alone;
``nn`` and ``losses``, one layer (``nn`` exports the loss classes, which are Modules, and
holds ``optim``'s gradient clipping in ``nn.utils``); ``examples`` and ``benchmarks`` on
top. Inside the engine the array code of ``engine.kernels`` imports neither the ops nor the
Tensor and its graph; the autograd core and every other engine module import neither the
ops nor the kernels (the ops wire themselves in from above: ``engine/ops/__init__.py``);
and no module of the engine imports the ``engine`` package's own namespace, which imports
them all. Every import counts: at module level, inside functions, and
``importlib.import_module`` of a constant name.

Line counts: 75 to 400 lines for the source files of the packages, the examples and the
benchmarks (``__init__.py`` and ``__main__.py`` exempt: they list exports or start a
program). A file in tests/ holds at most 400 lines and has no minimum: a conftest, a helper
script run in a subprocess or the few tests that need ``mpirun`` are rightly small, and
merging them into a neighbour would mix fixtures and concerns.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "data", "optim", "nn", "losses", "xpgrad")
PROGRAMS = ("examples", "benchmarks")
ALLOWED = {                     # package -> the packages of this repository it may import
    "engine": {"engine"},
    "data": {"engine", "data"},
    "optim": {"engine", "optim"},
    "nn": {"engine", "optim", "nn", "losses"},
    "losses": {"engine", "optim", "nn", "losses"},
    "xpgrad": {"engine", "data", "optim", "nn", "losses", "xpgrad"},   # gathers them all
    "examples": set(PACKAGES) | {"examples"},
    "benchmarks": set(PACKAGES) | {"benchmarks"},
}
GRAPH = ("engine.tensor", "engine.function", "engine.grad_mode", "engine.autograd")
MIN_LINES, MAX_LINES = 75, 400
EXEMPT = ("__init__.py", "__main__.py")


def source_files(top: str) -> list[Path]:
    return sorted(p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import in ``source``, the code of ``module``:
    ``from a import b`` names ``a.b`` when that is a module of the repository, else ``a``;
    relative imports are resolved; ``importlib.import_module("a.b")`` counts as well."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[:len(module.split(".")) - node.level + is_package]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if _is_module(full) else base, node.lineno))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value, node.lineno))
    return list(dict.fromkeys(found))


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violation(module: str, imported: str) -> str | None:
    """Why ``module`` may not import ``imported``, or None when it may."""
    top, target = module.split(".")[0], imported.split(".")[0]
    if top not in ALLOWED or target not in ALLOWED:
        return None                              # a third-party module
    if target not in ALLOWED[top]:
        return f"{top} sits below {target}"
    if top != "engine" or target != "engine" or module == "engine":
        return None
    if imported == "engine":
        return "the engine package's namespace imports every engine module"
    if _within(module, ["engine.kernels"]):
        if _within(imported, ["engine.ops", *GRAPH]):
            return "the kernels are array code, below the Tensor, its graph and the ops"
        return None
    if not _within(module, ["engine.ops"]) and _within(imported, ["engine.ops",
                                                                  "engine.kernels"]):
        return "the engine's core sits below the kernels and the ops"
    return None


def import_problems(tops=PACKAGES + PROGRAMS) -> list[str]:
    problems = []
    for top in tops:
        for path in source_files(top):
            module = module_name(path)
            source = path.read_text(encoding="utf-8")
            for imported, line in imports(source, module, path.name == "__init__.py"):
                why = violation(module, imported)
                if why:
                    rel = path.relative_to(ROOT)
                    problems.append(f"{rel}:{line} imports {imported}: {why}")
    return problems


def line_problems(counts: dict[str, int]) -> list[str]:
    """The files of ``{relative path: line count}`` outside their bounds."""
    problems = []
    for rel, n in sorted(counts.items()):
        name = rel.rsplit("/", 1)[-1]
        if rel.startswith("tests/"):
            low = 0
        elif name in EXEMPT:
            continue
        else:
            low = MIN_LINES
        if not low <= n <= MAX_LINES:
            problems.append(f"{rel}: {n} lines, expected {low} to {MAX_LINES}")
    return problems


def test_no_module_imports_a_layer_above_its_own():
    problems = import_problems()
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_every_source_file_keeps_to_its_line_bounds():
    counts = {}
    for top in PACKAGES + PROGRAMS + ("tests",):
        for path in source_files(top):
            counts[path.relative_to(ROOT).as_posix()] = len(
                path.read_text(encoding="utf-8").splitlines())
    assert len(counts) > 200          # the walk found the repository
    problems = line_problems(counts)
    assert not problems, "files out of bounds:\n" + "\n".join(problems)


@pytest.mark.parametrize("module, source, imported, why", [
    ("engine.autograd", "def f():\n    from engine.ops import shape\n", "engine.ops.shape",
     "below the kernels and the ops"),
    ("engine.function", "import importlib\nimportlib.import_module('engine.kernels.cpu')\n",
     "engine.kernels.cpu", "below the kernels and the ops"),
    ("engine.kernels.cpu", "from engine.tensor import Tensor\n", "engine.tensor",
     "array code"),
    ("engine.kernels.reference", "from ..ops import utils\n", "engine.ops.utils",
     "array code"),
    ("engine.gradcheck", "import engine\n", "engine", "namespace"),
    ("engine.backend", "import nn.functional as F\n", "nn.functional", "engine sits below nn"),
    ("data.loader", "from optim import SGD\n", "optim", "data sits below optim"),
    ("optim.adam", "def f():\n    import losses\n", "losses", "optim sits below losses"),
])
def test_the_import_check_catches_upward_imports(module, source, imported, why):
    found = imports(source, module)
    assert imported in [name for name, _ in found]
    reason = violation(module, imported)
    assert reason is not None and why in reason


@pytest.mark.parametrize("module, imported", [
    ("engine.ops.shape", "engine.kernels"), ("engine.ops.methods", "engine.autograd"),
    ("engine.kernels.cpu", "engine.threads"), ("engine.autograd", "engine.grad_mode"),
    ("engine", "engine.ops.select"), ("nn.functional", "losses.classification"),
    ("losses.modules", "nn.module"), ("nn.utils", "optim.clip"), ("examples.common", "nn"),
    ("engine.backend", "numpy"),
])
def test_the_import_check_lets_downward_imports_pass(module, imported):
    assert violation(module, imported) is None


def test_the_line_check_applies_each_bound():
    counts = {"engine/a.py": 74, "engine/b.py": 75, "nn/c.py": 401, "optim/__init__.py": 3,
              "benchmarks/__main__.py": 6, "tests/test_d.py": 12, "tests/test_e.py": 401,
              "examples/f.py": 400}
    assert line_problems(counts) == [
        "engine/a.py: 74 lines, expected 75 to 400",
        "nn/c.py: 401 lines, expected 75 to 400",
        "tests/test_e.py: 401 lines, expected 0 to 400",
    ]
