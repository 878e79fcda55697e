"""Validation tables of a crystal classifier (like the Neighbors Map paper's Fig. 3) with
LAMMPS CNA beside them, and the rebuild of its model card from model + dataset.

Predictions go through :class:`insitu.model.Classifier` (onnxruntime), the code path used
in situ, on the stored validation descriptors.  The card itself is written by
:mod:`insitu.training.model_card`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from insitu.training.cna_reference import cna_correct_code
from insitu.training.consensus_eval import frame_rows_predictions
from insitu.training.mc_calibration import validation_mi
from insitu.training.model_card import pct, write_crystal_card

T_BINS = ((0.0, 0.25), (0.25, 0.45), (0.45, 0.70), (0.70, 9.9))


def _tbin_name(lo, hi):
    return f"T/Tm {lo:.2f}-{hi:.2f}" if hi < 9 else f"T/Tm >= {lo:.2f}"


cna_correct = cna_correct_code


def dataset_key(clf) -> str:
    """The dataset key (``nm`` / ``boo``) of a classifier's descriptor."""
    return "nm" if clf.descriptor.kind == "neighbors_map" else "boo"


def read_dataset(data_path: str | Path, clf) -> tuple[np.ndarray, dict, dict]:
    """(features, 1-D columns, provenance) of a dataset for classifier ``clf``; refuses
    (:class:`insitu.descriptors.fingerprint.DescriptorMismatch`) features that the current
    descriptor code would not compute, and a model trained on such features. Neighbors Maps
    stored at a larger n_G than the model's are cropped when that is exact
    (:func:`insitu.training.nm_crop.features_for`)."""
    import h5py

    from insitu.descriptors import descriptor_from_metadata
    from insitu.descriptors.fingerprint import check_fingerprint
    from insitu.training.nm_crop import features_for

    key = dataset_key(clf)
    with h5py.File(data_path, "r") as h5:
        if key not in h5:
            raise ValueError(f"{data_path}: has no '{key}' descriptors (has {list(h5)})")
        stored = json.loads(h5[key].attrs.get("fingerprint", "null"))
        stored_desc = descriptor_from_metadata(json.loads(h5[key].attrs["descriptor"]))
        feats = h5[key][...]
        cols = {k: h5[k][...] for k in h5 if h5[k].ndim == 1}
        provenance = json.loads(h5.attrs.get("provenance", "{}"))
    check_fingerprint(stored, stored_desc, f"dataset {data_path} ['{key}']")
    check_fingerprint(clf.metadata.get("training", {}).get("descriptor_fingerprint"),
                      clf.descriptor, f"model {clf.metadata.get('name', '')} (its training "
                      "features)")
    feats = features_for(feats, stored_desc, clf.descriptor, f"dataset {data_path} ['{key}']")
    return feats, cols, provenance


def predict_rows(clf, feats: np.ndarray, index: np.ndarray, data_path=None,
                 cols: dict | None = None) -> dict:
    """Labels of dataset rows ``index`` as the runtime gives them: MC dropout at the
    model's default T (ARISE Supp. Eq. 4: mean of the passes; masks seeded by the row),
    unknown below the confidence threshold, above the MI threshold (Supp. Eq. 5), above
    the novelty threshold (:mod:`insitu.training.novelty`) or undescribed. Returns
    ``pred``, ``unknown``, ``by_mi``, ``by_novelty`` and the raw ``mc`` output. A model
    with a neighbour consensus needs the rows' whole snapshots: ``data_path`` and its
    ``cols`` (:func:`insitu.training.consensus_eval.frame_rows_predictions`)."""
    index = np.asarray(index)
    if clf.consensus is not None:
        if data_path is None or cols is None:
            raise ValueError(f"{clf.path}: a model with a neighbour consensus is evaluated "
                             f"on whole snapshots: give the dataset path and columns")
        return frame_rows_predictions(clf, data_path, cols, index)
    mc = validation_mi(clf, feats[index], index + 1)
    proba = mc["mean_probabilities"]
    pred = proba.argmax(1)
    by_mi = mc["mi"] > clf.mi_threshold if clf.mc_passes > 1 else np.zeros(len(pred), bool)
    by_novelty = np.zeros(len(pred), bool) if mc["novelty"] is None \
        else mc["novelty"] > clf.novelty_threshold
    unknown = (proba.max(1) < clf.confidence_threshold) | by_mi | by_novelty \
        | ~mc["described"]
    return dict(pred=pred, unknown=unknown, by_mi=by_mi, by_novelty=by_novelty, mc=mc)


def validation_tables(model_path: str | Path, data_path: str | Path, val_index: np.ndarray,
                      feats: np.ndarray | None = None, cols: dict | None = None,
                      n_threads: int = 1) -> dict:
    """Accuracy per class x missing fraction x temperature bin on the validation atoms,
    with CNA on the same atoms. Returns a dict with ``overall``, ``rows`` and ``markdown``."""
    from insitu.model import Classifier

    clf = Classifier.load(model_path, n_threads=n_threads)
    if feats is None or cols is None:
        feats, cols, _ = read_dataset(data_path, clf)
    val_index = np.asarray(val_index)
    p = predict_rows(clf, feats, val_index, data_path, cols)
    mc, pred, by_mi, unknown = p["mc"], p["pred"], p["by_mi"], p["unknown"]
    truth = cols["label"][val_index]
    ok = pred == truth
    classes = clf.classes
    frac = np.round(cols["missing_fraction"][val_index], 3)
    tm = cols["t_over_tm"][val_index]
    cna = cols["cna"][val_index] if "cna" in cols else None  # labelled frames: no CNA
    rows = []
    lines = []
    bins = [b for b in T_BINS if np.any((tm >= b[0]) & (tm < b[1]))]
    head = ["structure", "missing"] + [_tbin_name(*b) for b in bins] + ["all T", "CNA all T",
                                                                         "atoms"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for ci, cname in enumerate(classes):
        sel_c = truth == ci
        if not sel_c.any():
            continue
        cna_ok_all = None if cna is None else cna_correct(cname, cna)
        for x in list(np.unique(frac[sel_c])) + ["all"]:
            sel = sel_c & ((frac == x) if x != "all" else True)
            cells = []
            for b in bins:
                s = sel & (tm >= b[0]) & (tm < b[1])
                if s.any():
                    a = float(ok[s].mean())
                    c = None if cna_ok_all is None else float(cna_ok_all[s].mean())
                    cells.append(f"{pct(a)} ({pct(c)})")
                else:
                    cells.append("-")
            acc = float(ok[sel].mean())
            cacc = None if cna_ok_all is None else float(cna_ok_all[sel].mean())
            rows.append(dict(structure=cname, missing=x if x == "all" else float(x),
                             accuracy=acc, cna_accuracy=cacc, atoms=int(sel.sum()),
                             unknown=float(unknown[sel].mean())))
            xs = "all" if x == "all" else f"{x:.1f}"
            lab = f"**{cname}**" if x == "all" else cname
            lines.append(f"| {lab} | {xs} | " + " | ".join(cells)
                         + f" | {pct(acc)} | {pct(cacc)} | {int(sel.sum())} |")
    overall = float(ok.mean())
    crystal = truth != classes.index("liquid") if "liquid" in classes else np.ones_like(ok)
    cna_all = np.zeros(len(truth), bool)
    cna_applicable = np.zeros(len(truth), bool)
    for ci, cname in enumerate(classes):
        c = None if cna is None else cna_correct(cname, cna)
        if c is not None:
            cna_all |= (truth == ci) & c
            cna_applicable |= truth == ci
    summary = {
        "overall": overall,
        "crystal": float(ok[crystal].mean()) if crystal.any() else None,
        "liquid_as_liquid": (float(ok[~crystal].mean()) if (~crystal).any() else None),
        "unknown_fraction": float(unknown.mean()),
        "mc_passes": clf.mc_passes,
        "mi_threshold": clf.mi_threshold,
        "unknown_by_mi_fraction": float(by_mi.mean()),
        "novelty_threshold": clf.novelty_threshold,
        "unknown_by_novelty_fraction": float(p["by_novelty"].mean()),
        "overall_one_pass": None if clf.consensus else float((clf.predict_proba(np.where(
            mc["described"].reshape((-1,) + (1,) * (feats.ndim - 1)), feats[val_index], 0))
            .argmax(1) == truth).mean()) if clf.mc_passes > 1 else overall,
        "overall_without_consensus": float((p["own_pred"] == truth).mean())
        if "own_pred" in p else None,
        "overall_known_as_correct": float((ok & ~unknown).mean()),
        "cna_overall_where_applicable": (float(cna_all[cna_applicable].mean())
                                         if cna_applicable.any() else None),
        "n_val": int(len(val_index)),
    }
    # confusion
    k = len(classes)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (truth, pred), 1)
    conf_lines = ["| truth \\ predicted | " + " | ".join(classes) + " |",
                  "|" + "---|" * (k + 1)]
    for i, c in enumerate(classes):
        tot = max(cm[i].sum(), 1)
        conf_lines.append(f"| {c} | " + " | ".join(f"{100 * v / tot:.1f}" for v in cm[i]) + " |")
    md = (f"Validation atoms: {len(val_index)} (independent MD runs, not seen in training). "
          f"Overall accuracy **{pct(overall)} %**; crystal atoms {pct(summary['crystal'])} %; "
          f"liquid atoms labelled liquid {pct(summary['liquid_as_liquid'])} %; below the "
          f"confidence threshold {clf.confidence_threshold}: {pct(summary['unknown_fraction'])} %."
          + consensus_sentence(clf, summary) + mc_sentence(summary)
          + f" LAMMPS `compute cna/atom` on the same atoms (where it has the class): "
          f"{pct(summary['cna_overall_where_applicable'])} %.\n\n"
          "Accuracy in % per structure x missing fraction x temperature bin; in parentheses "
          "LAMMPS `compute cna/atom` on the same atoms (liquid: CNA counted correct when it "
          "says 'other' or 'icosahedral'; cubic diamond: CNA has no such class, n/a).\n\n"
          + "\n".join(lines) + "\n\nConfusion matrix (rows: truth, % of the row):\n\n"
          + "\n".join(conf_lines) + "\n")
    return {"summary": summary, "rows": rows, "confusion": cm.tolist(), "markdown": md}


def consensus_sentence(clf, summary: dict) -> str:
    """The model's neighbour consensus and the accuracy without it (empty without one)."""
    if clf.consensus is None:
        return ""
    return (f" Neighbour consensus (`insitu.model.consensus`): {clf.consensus.describe()}; "
            f"every validation atom was classified within its whole snapshot; the atoms' "
            f"own labels (no consensus): {pct(summary['overall_without_consensus'])} %.")


def mc_sentence(summary: dict) -> str:
    """What MC dropout did on the validation atoms (empty for a deterministic model)."""
    if summary.get("mc_passes", 1) < 2:
        return ""
    return (f" MC dropout (ARISE Supp. Eqs. 4-5), T = {summary['mc_passes']} passes: the "
            f"accuracy is that of the mean probabilities" + (
                "" if summary["overall_one_pass"] is None else
                f" (one pass, dropout off: {pct(summary['overall_one_pass'])} %)")
            + "; the unknown atoms include those with a "
            f"mutual information above {summary['mi_threshold']:.4f} bits "
            f"({pct(summary['unknown_by_mi_fraction'])} % of the atoms)"
            + (f" and a feature-space novelty above {summary['novelty_threshold']:.4g} "
               f"({pct(summary['unknown_by_novelty_fraction'])} %)"
               if summary.get("novelty_threshold") is not None else "")
            + "; counting every "
            f"unknown atom as wrong the accuracy is "
            f"{pct(summary['overall_known_as_correct'])} %.")


def write_json(path: str | Path, obj: object) -> None:
    """``obj`` as indented JSON (numpy arrays as lists)."""
    Path(path).write_text(json.dumps(obj, indent=2, default=lambda o: o.tolist()
                                     if hasattr(o, "tolist") else str(o)))


def rebuild_card(model_path: str | Path, data_path: str | Path, command: str | None = None,
                 extra: str = "") -> Path:
    """Recompute the validation tables of an exported model on its dataset and (re)write its
    model card from the model's metadata (no torch needed); ``extra`` (default: the file
    ``<model>.uncertainty.md`` beside it, if any) is appended before 'Retrain'. A
    near-transition dataset (``insitu train data --protocol transition``) gets the
    near-transition card
    (:func:`insitu.training.transition_report.write_transition_card`)."""
    from insitu.model import Classifier

    clf = Classifier.load(model_path)
    beside = Path(model_path).with_suffix(".uncertainty.md")  # measured by a test, kept
    if not extra and beside.is_file():
        extra = beside.read_text()
    tr = dict(clf.metadata.get("training", {}))
    key = dataset_key(clf)
    feats, cols, provenance = read_dataset(data_path, clf)
    val_index = np.nonzero(cols["split"] == 1)[0]
    tables = validation_tables(model_path, data_path, val_index, feats=feats, cols=cols)
    report = {**tr, "classes": clf.classes, "arch": tr.get("arch") or
              ("cnn" if key == "nm" else "mlp"), "threshold": clf.confidence_threshold,
              "tables": tables}
    if provenance.get("protocol") == "transition":
        from insitu.training.transition_report import write_transition_card
        return write_transition_card(model_path, data_path, report, provenance,
                                     command=command, extra=extra)
    return write_crystal_card(model_path, report, provenance, clf.metadata["descriptor"],
                              command=command, extra=extra)
