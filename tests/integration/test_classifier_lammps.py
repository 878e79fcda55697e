"""Shipped crystal models on a liquid made by a real LAMMPS run (not a training material)."""

from __future__ import annotations

import pytest
from lammps_helpers import run_lammps

from insitu.io.lammps_dump import read_lammps_dump
from insitu.model import Classifier
from insitu.resources import model_path

LIQUID_NI = """units metal
lattice fcc 3.52
region box block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 box
mass 1 58.69
pair_style eam
pair_coeff * * Ni_u3.eam
velocity all create 5000 7 mom yes rot yes dist gaussian
fix 1 all npt temp 3500 3500 0.1 iso 0 0 1.0
timestep 0.001
run 2500
unfix 1
fix 2 all npt temp 2200 2200 0.1 iso 0 0 1.0
run 1500
write_dump all custom liquid.dump id type x y z modify sort id
"""


@pytest.fixture(scope="module")
def liquid_ni(tmp_path_factory):
    """256 atoms of liquid Ni (Ni_u3.eam) from a short LAMMPS run."""
    work = tmp_path_factory.mktemp("liqni")
    run_lammps(LIQUID_NI, work, nprocs=1)
    return read_lammps_dump(work / "liquid.dump")


@pytest.mark.parametrize("name", ["crystal-boo", "crystal-nm"])
def test_shipped_models_label_liquid(name, liquid_ni):
    res = Classifier.load(model_path(name)).classify(liquid_ni)
    assert res.fractions()["liquid"] > 0.95, res.fractions()
