"""Transfer check: the crystal models on materials they were not trained on.

    .venv/bin/python -m insitu.training.transfer [--models models/crystal-nm.onnx ...]

Short NPT runs (LAMMPS) of fcc Ni (Ni_u3.eam), fcc Cu (CuZr_mm.eam.fs, Cu only), hcp Mg
(Mg_mm.eam.fs) at 1/3, 1/2 and 2/3 of an estimated T_m, and liquid Ni; prints the fraction of
atoms given the right label by each model and by LAMMPS cna/atom (markdown table).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from insitu.io.lammps_dump import iter_lammps_dump
from insitu.resources import model_path
from insitu.training.datagen import (
    POTENTIAL_DIR,
    CNACalculator,
    cna_correct_code,
    cna_cutoff,
    run_lammps_input,
)

CASES = [
    # name, class, lattice, a, reps, mass, pair_style, potential file, element, T_m estimate
    ("Ni", "fcc", "fcc", 3.52, (4, 4, 4), 58.69, "eam", "Ni_u3.eam", None, 1700.0),
    ("Cu", "fcc", "fcc", 3.615, (4, 4, 4), 63.55, "eam/fs", "CuZr_mm.eam.fs", "Cu", 1350.0),
    ("Mg", "hcp", "hcp", 3.21, (5, 3, 4), 24.305, "eam/fs", "Mg_mm.eam.fs", "Mg", 920.0),
]

SCRIPT = """units metal
atom_style atomic
boundary p p p
lattice {lattice} {a}
region box block 0 {r0} 0 {r1} 0 {r2}
create_box 1 box
create_atoms 1 box
mass 1 {mass}
pair_style {pair_style}
pair_coeff {coeff}
neighbor 1.0 bin
timestep 0.001
velocity all create {t2} 4242 mom yes rot yes dist gaussian
fix 1 all npt temp {t} {t} 0.1 {baro} 0 0 1.0
run 3000
dump d all custom 1000 {dump} id type x y z
dump_modify d sort id
run 2000
"""


def main(argv: list[str] | None = None) -> int:
    from insitu.model import Classifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=[str(model_path("crystal-nm")),
                                                   str(model_path("crystal-boo"))])
    ap.add_argument("--workdir", default="data/transfer",
                    help="LAMMPS runs (default %(default)s, relative to the current folder)")
    args = ap.parse_args(argv)
    work = Path(args.workdir)
    clfs = [Classifier.load(m) for m in args.models]
    cna = CNACalculator()
    head = ["material", "truth", "T (K)", "T/Tm"] + [c.path.stem for c in clfs] + ["CNA"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    runs = []
    for name, cls, lat, a, reps, mass, ps, pot, el, tm in CASES:
        for f in (1 / 3, 1 / 2, 2 / 3):
            runs.append((name, cls, lat, a, reps, mass, ps, pot, el, tm, f))
    runs.append(("Ni", "liquid", "fcc", 3.52, (4, 4, 4), 58.69, "eam", "Ni_u3.eam", None,
                 1700.0, 1.3))
    for name, cls, lat, a, reps, mass, ps, pot, el, tm, f in runs:
        t = round(f * tm)
        tag = f"{name}_{cls}_{t}K"
        dump = work / f"{tag}.dump"
        coeff = f"* * {POTENTIAL_DIR / pot}" + (f" {el}" if el else "")
        if not dump.exists():
            t_init = 2 * t if cls != "liquid" else 2.5 * tm
            run_lammps_input(SCRIPT.format(lattice=lat, a=a, r0=reps[0], r1=reps[1], r2=reps[2],
                                           mass=mass, pair_style=ps, coeff=coeff, t=t,
                                           t2=t_init, dump=dump.name,
                                           baro="aniso" if lat == "hcp" else "iso"), work, tag)
        frames = [fr for fr in iter_lammps_dump(dump) if fr.step > 3000]
        cells = []
        for clf in clfs:
            ok = [np.mean(clf.classify(fr).labels == cls) for fr in frames]
            cells.append(f"{100 * np.mean(ok):.1f}")
        structure = cls if cls != "liquid" else "fcc"
        cna_ok = [np.mean(cna_correct_code(cls, cna(fr, cna_cutoff(structure,
                                                                    fr.volume / len(fr)))))
                  for fr in frames]
        print(f"| {name} | {cls} | {t} | {f:.2f} | " + " | ".join(cells)
              + f" | {100 * np.mean(cna_ok):.1f} |")
        sys.stdout.flush()
    cna.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
