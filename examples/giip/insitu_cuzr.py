"""The GIIP model of the Cu-Zr example projected in situ: LAMMPS on 2 MPI ranks, Cu50Zr50
glass (the 3e13 K/s sample of seed 87287) at 500 K, ``giip_attach`` sampling LAEs into HDF5 and
projecting ``--max-atoms`` random Cu atoms per rank every ``--every`` steps. Prints the
cluster fractions per call and each rank's cost per projected atom, the MD time per step
and the interval that keeps the projection under 10 % of the run.

    .venv/bin/python examples/giip/insitu_cuzr.py [--every 100] [--steps 400]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from insitu.io.lammps_data import write_lammps_data
from insitu.io.lammps_dump import read_lammps_dump
from insitu.launch import run_lmp

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "out/giip/cuzr/insitu"

SCRIPT = """
units metal
read_data glass.data
mass 1 63.546
mass 2 91.224
pair_style eam/fs
pair_coeff * * CuZr_mm.eam.fs Cu Zr
neighbor 1.0 bin
neigh_modify delay 0 every 1 check yes
comm_modify cutoff 6.0
timestep 0.002
velocity all create 500 11 loop geom
fix md all nvt temp 500 500 0.2
python giip_attach input 7 SELF gp every={every} model={model} max_atoms={max_atoms} &
    sample=laes.h5 n_sample=50 format pssssss &
    here "from insitu.coupling.giip_insitu import giip_attach"
python giip_attach invoke
fix gp all python/invoke {every} end_of_step giip_gp
thermo {every}
thermo_style custom step temp pe v_gp_c0 v_gp_c1 v_gp_c2 v_gp_other v_gp_far v_gp_m1
run {steps}
python giip_report input 2 SELF gp format ps here &
    "from insitu.coupling.giip_insitu import giip_report"
python giip_report invoke
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--max-atoms", type=int, default=10)
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    frame = read_lammps_dump(ROOT / "out/giip/cuzr/rate_3e13/seed_87287/cuzr_final.dump")
    write_lammps_data(OUT / "glass.data", frame, masses={1: 63.546, 2: 91.224})
    (OUT / "laes.h5").unlink(missing_ok=True)
    script = SCRIPT.format(every=args.every, steps=args.steps, max_atoms=args.max_atoms,
                           model=ROOT / "out/giip/cuzr/model.npz")
    (OUT / "in.lmp").write_text(script)
    proc = run_lmp(OUT / "in.lmp", nprocs=2, cwd=OUT, extra=["-log", "log.lammps"])
    for line in proc.stdout.splitlines():
        if re.match(r"\s+\d+\s+[\d.]+\s+-", line) or line.startswith(("giip ", "insitu giip")):
            print(line)


if __name__ == "__main__":
    main()
