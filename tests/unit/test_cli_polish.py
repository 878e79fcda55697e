"""A polished command line (issue 14): help for every subcommand and option, `insitu env`
in a form eval accepts with every variable of the README's cluster section, the doctor's
decisions on plain `lmp` and the Python that LAMMPS embeds."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from insitu.cli import build_parser
from insitu.cli.doctor import Check, embedded_python_check, plain_lmp_check
from insitu.cli.env import VARIABLES

REPO = Path(__file__).resolve().parents[2]
INSITU = [sys.executable, "-m", "insitu"]


def all_options(parser: argparse.ArgumentParser, path=("insitu",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), f"subcommand {name}", helps.get(name)
                yield from all_options(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield path, "/".join(action.option_strings) or action.dest, action.help


def test_every_subcommand_and_option_has_help():
    parser, _ = build_parser()
    missing = [(" ".join(p), name) for p, name, text in all_options(parser)
               if not (text or "").strip()]
    assert missing == []
    assert len(list(all_options(parser))) > 100  # the walk reaches the nested subcommands


def test_env_is_evaluable_and_names_every_variable(tmp_path):
    out = subprocess.run(INSITU + ["env"], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    exported = re.findall(r"^export (\w+)=", out, re.M)
    assert exported == list(VARIABLES)
    assert set(VARIABLES) == {"PYTHONPATH", "LD_LIBRARY_PATH", "LAMMPS_POTENTIALS",
                              "OMP_NUM_THREADS", "NUMBA_CACHE_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env["PATH"] = os.environ["PATH"]
    script = f'eval "$({" ".join(INSITU)} env)" && ' + " && ".join(
        f'echo "{v}=${{{v}}}"' for v in VARIABLES)
    shown = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                           cwd=tmp_path, check=True).stdout
    values = dict(line.split("=", 1) for line in shown.splitlines())
    assert str(REPO) in values["PYTHONPATH"].split(os.pathsep)
    assert values["OMP_NUM_THREADS"] == "1"
    assert values["NUMBA_CACHE_DIR"] and values["LAMMPS_POTENTIALS"]
    assert Path(values["LAMMPS_POTENTIALS"], "Ni_u3.eam").is_file()


def test_env_keeps_what_is_set_and_fish_syntax(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="4", NUMBA_CACHE_DIR=str(tmp_path / "nb"))
    out = subprocess.run(INSITU + ["env", "--fish"], capture_output=True, text=True,
                         check=True, env=env).stdout
    assert "set -gx OMP_NUM_THREADS 4" in out
    assert f"set -gx NUMBA_CACHE_DIR {tmp_path / 'nb'}" in out


def test_python_version_mismatch_is_named():
    check = embedded_python_check("3.10.12", "3.11.7")
    assert not check.ok and check.line().startswith("FAIL")
    assert "LAMMPS embeds Python 3.10.12" in check.detail and "3.11.7" in check.detail
    assert "INSITU_PYTHON=python3.10" in check.fix
    assert embedded_python_check("3.11.2", "3.11.7").ok


def test_plain_lmp_decisions(tmp_path):
    here = tmp_path / "insitu"
    ok = plain_lmp_check(f"insitu-probe import ok 0.2.0 {here}/__init__.py", here)
    assert ok.ok and not ok.warn and ok.line().startswith("OK")
    other = plain_lmp_check("insitu-probe import ok 0.1.0 /elsewhere/insitu/__init__.py", here)
    assert other.ok and other.warn and "/elsewhere/insitu" in other.detail
    missing = plain_lmp_check("insitu-probe import failed ModuleNotFoundError No module", here)
    assert missing.ok and missing.warn and missing.line().startswith("WARN")
    assert 'eval "$(insitu env)"' in missing.fix
    assert Check("x", True, "d", "f", warn=True).line().splitlines()[1].strip() == "fix: f"
