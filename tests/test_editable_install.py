"""The README's editable install puts the repository on sys.path, so that a user's own
``data/``, ``nn/`` or ``engine/`` folder next to their script does not hide xpgrad's packages.

A folder without ``__init__.py`` is a namespace package; Python's path finder prefers a
regular package anywhere on ``sys.path`` over it, but only if the regular package is found
through ``sys.path`` at all (an import hook placed after the path finder comes too late).
The check installs a copy of this tree, as the README does, into a fresh virtual
environment and runs a script from a directory with such folders. The fresh environment
sees this one's packages (numpy, pip, setuptools from the test extra) through a .pth file,
and the build runs without isolation, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "nn", "optim", "losses", "data", "xpgrad")

SCRIPT = """\
import json
import sys

import data
import engine
import nn
from data import DataLoader

print(json.dumps({"engine": engine.__file__, "nn": nn.__file__, "data": data.__file__,
                  "loader": sys.modules[DataLoader.__module__].__file__}))
"""


def _mirror_site_packages(target: Path) -> None:
    """Links to this environment's installed packages, minus any install of xpgrad (and
    every .pth file), for the fresh environment to import numpy, numba, pip, setuptools."""
    target.mkdir()
    dirs = [Path(sysconfig.get_paths()["purelib"]), *map(Path, site.getsitepackages())]
    for directory in dict.fromkeys(d for d in dirs if d.is_dir()):
        for entry in directory.iterdir():
            name = entry.name
            if (name.endswith(".pth") or name.startswith(("__editable__", "xpgrad"))
                    or (target / name).exists()):
                continue
            (target / name).symlink_to(entry)


def test_user_folders_named_like_the_packages_do_not_hide_them(tmp_path):
    tree = tmp_path / "xpgrad"                       # a copy: the build writes egg-info
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    for name in PACKAGES:
        shutil.copytree(REPO / name, tree / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    _mirror_site_packages(tmp_path / "base")
    (Path(purelib) / "_base_packages.pth").write_text(f"{tmp_path / 'base'}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "-e", f"{tree}[examples]"],
        cwd=tree, env=env, capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr

    project = tmp_path / "project"
    for folder in ("data", "nn", "engine"):
        (project / folder).mkdir(parents=True)
    (project / "data" / "train.csv").write_text("text,label\ngood film,pos\nbad film,neg\n")
    (project / "data" / "test.csv").write_text("text,label\nfine film,pos\n")
    (project / "nn" / "weights.csv").write_text("w\n0.5\n")
    (project / "engine" / "notes.txt").write_text("my own engine notes\n")
    (project / "train.py").write_text(SCRIPT)
    run = subprocess.run([python, "train.py"], cwd=project, env=env, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.splitlines()[-1])
    assert {k: found[k] for k in ("engine", "nn", "data")} == {
        name: str(tree / name / "__init__.py") for name in ("engine", "nn", "data")}
    assert Path(found["loader"]).is_relative_to(tree / "data")
