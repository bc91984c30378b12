"""``pip install -e ".[distributed]"`` brings everything examples/ddp_train.py imports.

The example runs (one process, smoke size) with every third-party import refused unless
its distribution is a dependency of xpgrad or of the ``distributed`` extra, directly or
through their own requirements: what a fresh environment with that extra would hold.
"""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")        # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]

GUARD = """
import importlib.metadata, os, runpy, sys

allowed = set(sys.argv[1].split(","))
owners = importlib.metadata.packages_distributions()
ours = {"engine", "nn", "optim", "losses", "data", "xpgrad"}


class OnlyInstalledByTheExtra:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        dists = {d.lower().replace("_", "-") for d in owners.get(top, [])}
        if top not in ours and dists and not dists & allowed:
            raise ModuleNotFoundError(f"No module named {top!r}: {sorted(dists)} is not "
                                      "installed by xpgrad[distributed]", name=top)
        return None


sys.meta_path.insert(0, OnlyInstalledByTheExtra())
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))   # as `python script`
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def installed_with(extra: str) -> set[str]:
    """Names of the distributions ``pip install xpgrad[extra]`` installs (those present
    here), following each one's requirements."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in
            project["dependencies"] + project["optional-dependencies"][extra]]
    seen = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [r for r in map(Requirement, requires)
                 if r.marker is None or r.marker.evaluate({"extra": ""})]
    return seen


def test_distributed_extra_installs_what_the_ddp_example_imports(tmp_path):
    pytest.importorskip("mpi4py")
    allowed = installed_with("distributed")
    proc = subprocess.run(
        [sys.executable, "-c", GUARD, ",".join(sorted(allowed)),
         str(ROOT / "examples" / "ddp_train.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test accuracy" in proc.stdout
    assert (tmp_path / "checkpoint.safetensors").exists()
