"""The uncertainty of an in-situ analysis step: the MC-dropout mean mutual information of
the atoms and the fraction above the model's MI threshold (ARISE Supp. Eq. 5), and the
fraction whose feature-space novelty is above the model's novelty threshold
(:mod:`insitu.model.novelty`), reduced over the ranks, for the thermo variables
``v_<ID>_mi`` / ``v_<ID>_uncertain`` / ``v_<ID>_novel`` and the log columns ``mean_mi`` /
``uncertain_fraction`` / ``novel_fraction``; the per-atom MI goes to ``d_<ID>_mi`` when
the script declares it with ``fix property/atom``.

The masks of an atom depend on (model seed, global id, step, pass) only
(:mod:`insitu.model.mc_dropout`), so these values do not depend on the decomposition."""

from __future__ import annotations

import numpy as np

from .mpi import sum_over_ranks

__all__ = ["UNCERTAINTY_NAMES", "per_atom_mi", "reduce_uncertainty"]

UNCERTAINTY_NAMES = ("mi", "uncertain", "novel")
"""Suffixes of the thermo variables, after the classes, ``unknown`` and ``conf``."""


def per_atom_mi(analysis_id: str) -> str:
    """Name of the optional per-atom MI property (``fix property/atom d_<ID>_mi``)."""
    return f"d_{analysis_id}_mi"


def reduce_uncertainty(comm, result) -> dict:
    """``mean_mi`` (bits, over all atoms of all ranks) and ``uncertain_fraction`` (MI above
    the model's threshold) of one step, NaN for both when the analysis runs without MC
    dropout (T = 1); ``novel_fraction`` (novelty above the model's threshold, whatever T),
    NaN for a model without the novelty output. In the order of UNCERTAINTY_NAMES."""
    local = np.array([float(result.mutual_information.sum(dtype=np.float64)),
                      float(result.uncertain.sum()), float(result.novel.sum()),
                      float(len(result.label_index))])
    mi_sum, n_uncertain, n_novel, n_atoms = sum_over_ranks(comm, local)
    n_atoms = max(n_atoms, 1.0)
    nan = float("nan")
    mc = result.mc_passes >= 2
    return {"mean_mi": mi_sum / n_atoms if mc else nan,
            "uncertain_fraction": n_uncertain / n_atoms if mc else nan,
            "novel_fraction": nan if result.novelty_threshold is None else n_novel / n_atoms}
