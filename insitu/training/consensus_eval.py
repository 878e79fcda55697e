"""Dataset rows classified through the runtime's whole-frame path, for models whose labels
need more than the row's own features (a neighbour consensus, :mod:`insitu.model.consensus`).

A ``--protocol transition`` dataset keeps the features of some atoms of each snapshot copy
(its rows), not of their neighbours. For such a model every evaluation row's snapshot copy
is rebuilt from the run's dump exactly as the dataset drew it
(:func:`insitu.training.transition_dataset.snapshot_copy`), classified whole with
:meth:`insitu.model.Classifier.classify` and the rows picked by atom id; the row's own
(per-atom) prediction is kept beside the consensus one, so a card shows both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from insitu.io.lammps_dump import iter_lammps_dump
from insitu.locality import find_ids
from insitu.training.transition_dataset import ROLE_CODE, snapshot_copy, wrapped

__all__ = ["frame_rows_predictions"]


def _labelled_frames(run: dict, root: Path):
    """The run's snapshots that carry a label, in order (one dataset group each)."""
    steps = [s["step"] for s in run["snapshots"] if s["label"] is not None]
    wanted = set(steps)
    dump = Path(run["dump"])
    dump = dump if dump.is_file() else root / dump
    if not dump.is_file():
        raise FileNotFoundError(f"{dump}: the dump of run {run['name']} is needed to classify "
                                f"its snapshots whole (regenerate the dataset's LAMMPS runs "
                                f"with `insitu train data --protocol transition`)")
    frames = {int(f.step): f for f in iter_lammps_dump(dump) if int(f.step) in wanted}
    return [frames[s] for s in steps]


def frame_rows_predictions(clf, data_path: str | Path, cols: dict,
                           index: np.ndarray) -> dict:
    """Predictions of rows ``index`` (no training row) of a transition dataset, each from
    the classification of its whole snapshot copy. Returns what
    :func:`insitu.training.report.predict_rows` returns (``pred``, ``unknown``, ``by_mi``,
    ``by_novelty``, ``mc`` with ``mean_probabilities``, ``mi``, ``described``,
    ``novelty``) plus ``own_pred``, the atoms' own (per-atom) predictions."""
    import h5py

    index = np.asarray(index, np.int64)
    if np.any(cols["role"][index] == ROLE_CODE["train"]):
        raise ValueError("frame_rows_predictions: evaluation rows only (no training run)")
    with h5py.File(data_path, "r") as h5:
        prov = json.loads(h5.attrs["provenance"])
    k = len(clf.classes)
    out = dict(mean=np.full((len(index), k), np.nan, np.float32), own=np.zeros(len(index),
               np.int64), mi=np.zeros(len(index)), described=np.zeros(len(index), bool),
               novelty=np.zeros(len(index), np.float32), unknown=np.zeros(len(index), bool),
               by_mi=np.zeros(len(index), bool), by_novelty=np.zeros(len(index), bool))
    root = Path(data_path).resolve().parent.parent
    done = np.zeros(len(index), bool)
    for run in prov["runs"]:
        if run["role"] == "train" or not np.any(cols["run_seed"][index] == run["seed"]):
            continue
        groups = np.unique(cols["group"][cols["run_seed"] == run["seed"]])
        frames = _labelled_frames(run, root)
        if len(frames) != len(groups):
            raise ValueError(f"{data_path}: run {run['name']} has {len(frames)} labelled "
                             f"snapshots but {len(groups)} groups of rows")
        for group, frame in zip(groups, frames):
            fr = wrapped(frame)
            in_group = np.nonzero((cols["run_seed"][index] == run["seed"])
                                  & (cols["group"][index] == group))[0]
            for x in np.unique(np.round(cols["missing_fraction"][index[in_group]], 3)):
                pos = in_group[np.round(cols["missing_fraction"][index[in_group]], 3) == x]
                sub, _ = snapshot_copy(fr, prov["seed"], run["seed"], int(group), float(x))
                res = clf.classify(sub)
                where, found = find_ids(sub.ids, cols["atom_id"][index[pos]])
                if not found.all():
                    raise ValueError(f"{data_path}: rows of run {run['name']} group {group} "
                                     f"are not atoms of its rebuilt snapshot copy")
                own = res.probabilities if res.own_probabilities is None \
                    else res.own_probabilities
                # an atom left undescribed gets the network's output on zeroed features,
                # as the stored-feature path gives it (it is unknown either way)
                out["mean"][pos] = np.where(res.undescribed[where, None], own[where],
                                            res.probabilities[where])
                out["own"][pos] = own[where].argmax(1)
                out["mi"][pos] = res.mutual_information[where]
                out["described"][pos] = ~res.undescribed[where]
                out["novelty"][pos] = np.nan if res.novelty is None else res.novelty[where]
                out["unknown"][pos] = res.label_index[where] < 0
                out["by_mi"][pos] = res.uncertain[where]
                out["by_novelty"][pos] = res.novel[where]
                done[pos] = True
    if not done.all():
        raise ValueError(f"{data_path}: {int((~done).sum())} rows belong to no run of the "
                         f"dataset's provenance")
    mc = {"mean_probabilities": out["mean"], "mi": out["mi"], "described": out["described"],
          "novelty": None if clf.novelty_threshold is None else out["novelty"]}
    return dict(pred=out["mean"].argmax(1), own_pred=out["own"], unknown=out["unknown"],
                by_mi=out["by_mi"], by_novelty=out["by_novelty"], mc=mc)
