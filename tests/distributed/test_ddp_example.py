"""The README's mpiexec line runs examples/ddp_train.py on 2 ranks (smoke size), as
written there, also as root, and the example writes its checkpoint."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mpi_util import mpiexec_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def readme_ddp_command() -> str:
    """The first bash block of the README's section on training over several processes."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Training on several processes", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README: no bash block in the section on training over several processes"
    return block.group(1).strip()


def test_readme_ddp_command_runs_on_two_ranks(tmp_path):
    if mpiexec_command(2) is None:
        pytest.skip("needs mpi4py and mpiexec")
    command = readme_ddp_command()
    assert command.endswith("mpiexec -n 2 python examples/ddp_train.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_ALLOW_RUN_AS_ROOT")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PRTE_MCA_rmaps_default_mapping_policy"] = ":oversubscribe"   # machines of 1 core
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c",
                           f"{command} --smoke --out {shlex.quote(str(tmp_path))}"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert "2 rank(s)" in proc.stdout and "test accuracy" in proc.stdout
    import engine

    state = engine.load(tmp_path / "checkpoint.safetensors")
    assert "model" in state and "optimizer" in state
