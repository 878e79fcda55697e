"""LAMMPS ``compute cna/atom`` as the traditional reference beside the learned labels: run on
arbitrary frames through the LAMMPS Python module, with the cutoff of adaptive-free CNA set
between the structure's neighbour shells."""

from __future__ import annotations

import numpy as np

from insitu.frame import Frame
from insitu.locality import find_ids

__all__ = ["CNA_CODE", "CNACalculator", "cna_correct_code", "cna_cutoff"]

# LAMMPS cna/atom codes: 1 fcc, 2 hcp, 3 bcc, 4 icosahedral, 5 other
CNA_CODE = {"fcc": 1, "hcp": 2, "bcc": 3}


class CNACalculator:
    """LAMMPS ``compute cna/atom`` on arbitrary frames through the LAMMPS Python module."""

    def __init__(self):
        from lammps import lammps
        self.lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])

    def __call__(self, frame: Frame, cutoff: float) -> np.ndarray:
        lmp = self.lmp
        c = frame.cell
        lmp.command("clear")
        lmp.command("units metal")
        lmp.command("atom_style atomic")
        lmp.command("boundary p p p")
        if abs(c[1, 0]) + abs(c[2, 0]) + abs(c[2, 1]) > 0:
            lmp.command(f"region box prism 0 {c[0, 0]} 0 {c[1, 1]} 0 {c[2, 2]} "
                        f"{c[1, 0]} {c[2, 0]} {c[2, 1]}")
        else:
            lmp.command(f"region box block 0 {c[0, 0]} 0 {c[1, 1]} 0 {c[2, 2]}")
        ntypes = int(frame.types.max())
        lmp.command(f"create_box {ntypes} box")
        lmp.command("mass * 1.0")
        n = len(frame)
        lmp.create_atoms(n, frame.ids.astype(int).tolist(), frame.types.astype(int).tolist(),
                         frame.positions.ravel().tolist(), shrinkexceed=False)
        lmp.command(f"pair_style zero {cutoff + 0.1}")
        lmp.command("pair_coeff * *")
        lmp.command("neighbor 0.5 bin")
        lmp.command(f"compute cna all cna/atom {cutoff}")
        lmp.command("run 0")
        natoms = lmp.get_natoms()
        if natoms != n:
            raise RuntimeError(f"CNA: LAMMPS kept {natoms} of {n} atoms")
        ids = np.array(lmp.numpy.extract_atom("id", nelem=n)).astype(np.int64)
        vals = np.array(lmp.numpy.extract_compute("cna", 1, 1)[:n]).astype(np.int64)
        out = np.empty(n, dtype=np.int64)
        out[find_ids(frame.ids, ids)[0]] = vals
        return out

    def close(self):
        self.lmp.close()


def cna_correct_code(cls_name: str, cna: np.ndarray):
    """Whether LAMMPS cna/atom agrees with the true class; None where CNA has no such class
    (cubic diamond). A liquid atom counts as correct when CNA says 'other' or 'icosahedral'."""
    if cls_name in CNA_CODE:
        return cna == CNA_CODE[cls_name]
    if cls_name == "liquid":
        return (cna == 4) | (cna == 5)
    return None


def cna_cutoff(structure: str, volume_per_atom: float) -> float:
    """Cutoff midway between the shells that CNA needs, from the (unaltered) atomic volume."""
    if structure == "fcc":
        a = (4 * volume_per_atom) ** (1 / 3)
        return 0.8536 * a
    if structure == "bcc":
        a = (2 * volume_per_atom) ** (1 / 3)
        return 1.207 * a
    if structure == "hcp":  # ideal-c/a equivalent: same as fcc with a_fcc = sqrt(2) a_hcp
        a = (4 * volume_per_atom) ** (1 / 3)
        return 0.8536 * a
    if structure == "cubic_diamond":  # CNA has no diamond class; midway 1st-2nd shell
        a = (8 * volume_per_atom) ** (1 / 3)
        return 0.5 * (np.sqrt(3) / 4 + np.sqrt(2) / 2) * a
    raise ValueError(structure)
