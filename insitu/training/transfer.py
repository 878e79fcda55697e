"""Transfer check: the crystal models on other potentials and elements
(``insitu train transfer``; of these, only Ni is held out of the shipped models' training).

Short NPT runs (LAMMPS) of fcc Ni (Ni_u3.eam), fcc Cu (CuZr_mm.eam.fs, Cu only), hcp Mg
(Mg_mm.eam.fs) at 1/3, 1/2 and 2/3 of an estimated T_m, and liquid Ni; yields the rows of a
markdown table: the fraction of atoms given the right label by each model and by LAMMPS
cna/atom.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from insitu.io.lammps_dump import iter_lammps_dump
from insitu.training.cna_reference import CNACalculator, cna_correct_code, cna_cutoff
from insitu.training.datagen import Material, run_lammps_input

__all__ = ["TRANSFER_MATERIALS", "transfer_table"]

TRANSFER_MATERIALS = (
    Material("Ni", "Ni", "fcc", "fcc", 3.52, (4, 4, 4), 58.69, "eam", "Ni_u3.eam", 1700.0),
    Material("Cu", "Cu", "fcc", "fcc", 3.615, (4, 4, 4), 63.55, "eam/fs", "CuZr_mm.eam.fs",
             1350.0),
    Material("Mg", "Mg", "hcp", "hcp", 3.21, (5, 3, 4), 24.305, "eam/fs", "Mg_mm.eam.fs",
             920.0, barostat="aniso"),
)

NPT_RUN = """velocity all create {t_init} 4242 mom yes rot yes dist gaussian
fix 1 all npt temp {t} {t} 0.1 {baro} 0 0 1.0
run 3000
dump d all custom 1000 {dump} id type x y z
dump_modify d sort id
run 2000
"""


def transfer_table(models: Sequence[str | Path], workdir: str | Path) -> Iterator[str]:
    """Markdown rows (header first) of the transfer check; LAMMPS runs are cached in
    ``workdir``."""
    from insitu.model import Classifier

    work = Path(workdir)
    clfs = [Classifier.load(m) for m in models]
    cna = CNACalculator()
    head = ["material", "truth", "T (K)", "T/Tm"] + [c.path.stem for c in clfs] + ["CNA"]
    yield "| " + " | ".join(head) + " |"
    yield "|" + "---|" * len(head)
    runs = [(mat, mat.structure, f) for mat in TRANSFER_MATERIALS for f in (1 / 3, 1 / 2, 2 / 3)]
    runs.append((TRANSFER_MATERIALS[0], "liquid", 1.3))
    for mat, cls, f in runs:
        t = round(f * mat.t_melt)
        tag = f"{mat.name}_{cls}_{t}K"
        dump = work / f"{tag}.dump"
        if not dump.exists():
            t_init = 2 * t if cls != "liquid" else 2.5 * mat.t_melt
            run_lammps_input(mat.md_head() + NPT_RUN.format(t_init=t_init, t=t, dump=dump.name,
                                                         baro=mat.barostat), work, tag)
        frames = [fr for fr in iter_lammps_dump(dump) if fr.step > 3000]
        cells = [f"{100 * np.mean([np.mean(c.classify(fr).labels == cls) for fr in frames]):.1f}"
                 for c in clfs]
        structure = cls if cls != "liquid" else mat.structure
        cna_ok = [np.mean(cna_correct_code(cls, cna(fr, cna_cutoff(structure,
                                                                    fr.volume / len(fr)))))
                  for fr in frames]
        yield (f"| {mat.name} | {cls} | {t} | {f:.2f} | " + " | ".join(cells)
               + f" | {100 * np.mean(cna_ok):.1f} |")
