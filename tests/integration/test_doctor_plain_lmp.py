"""`insitu doctor` runs plain `lmp` in the current shell: does its embedded Python import
insitu, and is it this environment's Python version (real lmp binary)."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys

from lammps_helpers import REPO

from insitu.cli.doctor import plain_lmp_checks


def doctor(env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "insitu", "doctor"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_plain_lmp_without_the_environment_is_a_warning_naming_insitu_env(monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    version, plain = plain_lmp_checks()
    assert version.ok and re.search(r"LAMMPS embeds Python 3\.\d+\.\d+", version.detail)
    assert platform.python_version() in version.detail
    assert plain.ok and plain.warn and "No module named 'insitu'" in plain.detail
    assert 'eval "$(insitu env)"' in plain.fix


def test_plain_lmp_after_eval_insitu_env_imports_this_insitu():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    exports = subprocess.run([sys.executable, "-m", "insitu", "env"], capture_output=True,
                             text=True, check=True, env=env).stdout
    for name, value in re.findall(r"^export (\w+)=(.*)$", exports, re.M):
        env[name] = value.strip("'")
    out = doctor(env)
    assert re.search(rf"OK +plain `lmp` in this shell imports insitu: insitu \S+ at "
                     rf"{re.escape(str(REPO / 'insitu'))}", out), out
    assert re.search(r"OK +Python of LAMMPS = Python of this environment", out), out
