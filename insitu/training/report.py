"""Validation tables (like the Neighbors Map paper's Fig. 3) with LAMMPS CNA beside them.

Predictions go through :class:`insitu.runtime.Classifier` (onnxruntime), the code path used
in situ, on the stored validation descriptors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .datagen import cna_correct_code

T_BINS = ((0.0, 0.25), (0.25, 0.45), (0.45, 0.70), (0.70, 9.9))


def _tbin_name(lo, hi):
    return f"T/Tm {lo:.2f}-{hi:.2f}" if hi < 9 else f"T/Tm >= {lo:.2f}"


cna_correct = cna_correct_code


def _pct(x):
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}"


def validation_tables(model_path, data_path, val_index, feats=None, cols=None,
                      n_threads: int = 1) -> dict:
    """Accuracy per class x missing fraction x temperature bin on the validation atoms,
    with CNA on the same atoms. Returns a dict with ``overall``, ``rows`` and ``markdown``."""
    from ..runtime import Classifier

    clf = Classifier.load(model_path, n_threads=n_threads)
    if feats is None or cols is None:
        import h5py
        key = "nm" if clf.descriptor.kind == "neighbors_map" else "boo"
        with h5py.File(data_path, "r") as h5:
            feats = h5[key][...]
            cols = {k: h5[k][...] for k in h5 if h5[k].ndim == 1}
    val_index = np.asarray(val_index)
    proba = clf.predict_proba(feats[val_index])
    pred = proba.argmax(1)
    conf = proba.max(1)
    truth = cols["label"][val_index]
    ok = pred == truth
    unknown = conf < clf.confidence_threshold
    classes = clf.classes
    frac = np.round(cols["missing_fraction"][val_index], 3)
    tm = cols["t_over_tm"][val_index]
    cna = cols["cna"][val_index]
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
        cna_ok_all = cna_correct(cname, cna)
        for x in list(np.unique(frac[sel_c])) + ["all"]:
            sel = sel_c & ((frac == x) if x != "all" else True)
            cells = []
            for b in bins:
                s = sel & (tm >= b[0]) & (tm < b[1])
                if s.any():
                    a = float(ok[s].mean())
                    c = None if cna_ok_all is None else float(cna_ok_all[s].mean())
                    cells.append(f"{_pct(a)} ({_pct(c)})")
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
                         + f" | {_pct(acc)} | {_pct(cacc)} | {int(sel.sum())} |")
    overall = float(ok.mean())
    crystal = truth != classes.index("liquid") if "liquid" in classes else np.ones_like(ok)
    cna_all = np.zeros(len(truth), bool)
    cna_applicable = np.zeros(len(truth), bool)
    for ci, cname in enumerate(classes):
        c = cna_correct(cname, cna)
        if c is not None:
            cna_all |= (truth == ci) & c
            cna_applicable |= truth == ci
    summary = {
        "overall": overall,
        "crystal": float(ok[crystal].mean()) if crystal.any() else None,
        "liquid_as_liquid": (float(ok[~crystal].mean()) if (~crystal).any() else None),
        "unknown_fraction": float(unknown.mean()),
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
          f"Overall accuracy **{_pct(overall)} %**; crystal atoms {_pct(summary['crystal'])} %; "
          f"liquid atoms labelled liquid {_pct(summary['liquid_as_liquid'])} %; below the "
          f"confidence threshold {clf.confidence_threshold}: {_pct(summary['unknown_fraction'])} %."
          f" LAMMPS `compute cna/atom` on the same atoms (where it has the class): "
          f"{_pct(summary['cna_overall_where_applicable'])} %.\n\n"
          "Accuracy in % per structure x missing fraction x temperature bin; in parentheses "
          "LAMMPS `compute cna/atom` on the same atoms (liquid: CNA counted correct when it "
          "says 'other' or 'icosahedral'; cubic diamond: CNA has no such class, n/a).\n\n"
          + "\n".join(lines) + "\n\nConfusion matrix (rows: truth, % of the row):\n\n"
          + "\n".join(conf_lines) + "\n")
    return {"summary": summary, "rows": rows, "confusion": cm.tolist(), "markdown": md}


def write_json(path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, default=lambda o: o.tolist()
                                     if hasattr(o, "tolist") else str(o)))


ARCH_TEXT = {
    "cnn": "Neighbors Map CNN of Allera et al., Appendix A: Conv(C,16,5) - ReLU - "
           "Conv(16,32,3) - ReLU - MaxPool(2) - Conv(32,16,3) - ReLU - Conv(16,16,3,stride 2) - "
           "ReLU - Conv(16,32,2,stride 2) - ReLU - Flatten(512) - Dropout(0.5) - Dense(24) - "
           "ReLU - BatchNorm - Dense(K); softmax inside the exported graph. A constant input "
           "scale (1/std of the training maps) is a graph constant, not a parameter.",
    "mlp": "MLP on BOO features: standardisation (training mean/std, inside the graph) - "
           "Dense(64) - ReLU - Dropout(0.1) - Dense(64) - ReLU - Dropout(0.1) - Dense(K); "
           "softmax inside the exported graph.",
}


PARAM_NOTE = {"cnn": " (the paper's 26,490 for 1 channel and 2 classes, +75 for 5 classes)"}


def _throughput_line(name: str) -> str:
    repo = Path(__file__).resolve().parents[2]
    res = repo / "benchmarks" / "results.json"
    try:
        inf = json.loads(res.read_text())["inference"]
        m = inf["models"][name]
        return (f"Inference throughput (onnxruntime, 1 thread, fp32, batch "
                f"{inf.get('batch_size')}): **{m['atoms_per_s']:.0f} atoms/s** "
                f"(model only); descriptor + model: {m.get('end_to_end_atoms_per_s', 0):.0f} "
                f"atoms/s. From `{inf.get('command')}` ({inf.get('date')}).")
    except Exception:  # noqa: BLE001 - results not measured yet
        return "Inference throughput: run `.venv/bin/python benchmarks/inference.py`."


def write_model_card(out, report: dict, provenance: dict, desc_meta: dict,
                     command: str | None = None, extra: str = "") -> Path:
    """Write ``<out stem>.md`` next to the ONNX model: data, parameters, validation tables,
    the retraining command."""
    out = Path(out)
    name = out.stem
    tables = report.get("tables", {})
    s = tables.get("summary", {})
    mats = provenance.get("materials", [])
    mat_lines = "\n".join(
        f"| {m['name']} | {m['structure']} | `{m['potential']}` ({m['pair_style']}) | "
        f"{m['t_melt']:.0f} | {round(2 / 3 * m['t_melt'])} | {m['lattice']} {m['a']} x "
        f"{'x'.join(str(r) for r in m['reps'])} |" for m in mats)
    desc_kind = desc_meta.get("kind")
    key = "nm" if desc_kind == "neighbors_map" else "boo"
    cmd = command or (f"insitu train crystal --descriptor {key} --out {out}")
    hist = "\n".join(
        f"| {h['epoch']} | {h['loss']:.4f} | {100 * h['train_accuracy']:.2f} | "
        f"{100 * h.get('val_accuracy_subset', float('nan')):.2f} |"
        for h in report.get("history", []))
    text = f"""# {name}

Per-atom crystal-structure classifier for `insitu`: classes {', '.join(report['classes'])}.
Descriptor `{desc_kind}` with parameters (stored in the model's metadata, nothing else is
needed at inference):

```json
{json.dumps(desc_meta)}
```

Model: {ARCH_TEXT[report['arch']]}
Trainable parameters: {report['n_parameters']}{PARAM_NOTE.get(report['arch'], '')}.
Confidence threshold {report.get('threshold', 0.5)} (below it the runtime says `unknown`).

Use: `Classifier.load("{out.as_posix()}").classify(frame)`, `insitu classify DUMP --model
{out.as_posix()}`, or in situ with `fix python/invoke` (see README).

## Data

Generated by `insitu train data` (LAMMPS {provenance.get('created', '')[:10]}), following the
Neighbors Map paper, Sec. 3.1: NPT ramp (100 K -> 2/3 T_m over {provenance.get('ramp_ps')}
ps, snapshot every 1 ps) for each crystal; liquids melted at 2 T_m for 6 ps, then cooled
1.5 T_m -> 1.05 T_m over 10 ps, snapshot every 2 ps. Every snapshot gets copies with a random
fraction x of its atoms removed, x in {provenance.get('missing_fractions')}. Training copies
are isotropically rescaled by U(1-j, 1+j), j = {provenance.get('scale_jitter')}, so that the
model does not key on one lattice constant (validation copies are not rescaled).
Train/validation split **by MD run**: one ramp per material for training, an independent
ramp (other velocity seed) for validation; no atom, snapshot or run is in both.

| material | class | potential | T_m used (K) | 2/3 T_m (K) | cell |
|---|---|---|---|---|---|
{mat_lines}

Training atoms {report['n_train']} ({report.get('n_train_groups')} snapshots), validation
atoms {report['n_val']} ({report.get('n_val_groups')} snapshots).

## Training

Adam (lr {report['lr']}, one-cycle schedule), cross-entropy with class weights
`{report['class_weights']}`, L2 (weight decay) {report['weight_decay']}, batch
{report['batch_size']}, {report['epochs']} epochs, seed {report['seed']}; {report['seconds']} s
of training on this machine (2 cores, shared with other jobs at the time).

| epoch | loss | train acc % | val acc % (5000-atom subset) |
|---|---|---|---|
{hist}

## Validation

Overall validation accuracy **{100 * s.get('overall', float('nan')):.2f} %** (crystal atoms
{_pct(s.get('crystal'))} %, liquid atoms labelled liquid {_pct(s.get('liquid_as_liquid'))} %).

{tables.get('markdown', '')}

{_throughput_line(name)}
{extra}
## Retrain from scratch

```
{cmd}
```

(`insitu train crystal` runs the LAMMPS data generation when `data/crystal.h5` is missing, then
the fit. Same as `insitu train data --out data/crystal.h5` followed by
`insitu train fit --data data/crystal.h5 --descriptor {key} --out {out.as_posix()}`.)

## Limitations

- Trained on one element per material (Fe, Al, Zr, Si) at zero pressure; other elements of
  the same structures are covered through the lattice-scale augmentation (+-{provenance.get(
      'scale_jitter')}) only.
- The descriptor treats all atom types alike (one geometric channel / no species); it is not
  a chemical-order classifier.
- No `amorphous` class: glasses are expected to be labelled `liquid` (or `unknown`).
- Out-of-distribution input is not flagged reliably by the confidence: e.g. uniformly random
  points with overlapping atoms (not a physical liquid) come out as confident
  `cubic_diamond` for the Neighbors Map model. Physical liquids (LAMMPS melts of Fe, Al, Zr,
  Si, Ni) are labelled `liquid`.
- fcc with both high temperature (> 0.45 T_m) and >= 40 % missing atoms is the weakest cell
  of the Neighbors Map model (see the table), mostly confused with hcp.
"""
    path = out.with_suffix(".md")
    path.write_text(text)
    return path


def rebuild_card(model_path, data_path, command: str | None = None, extra: str = "") -> Path:
    """Recompute the validation tables of an exported model on its dataset and (re)write its
    model card from the model's metadata (no torch needed)."""
    import h5py

    from ..runtime import Classifier

    clf = Classifier.load(model_path)
    tr = dict(clf.metadata.get("training", {}))
    key = "nm" if clf.descriptor.kind == "neighbors_map" else "boo"
    with h5py.File(data_path, "r") as h5:
        feats = h5[key][...]
        cols = {k: h5[k][...] for k in h5 if h5[k].ndim == 1}
        provenance = json.loads(h5.attrs.get("provenance", "{}"))
    val_index = np.nonzero(cols["split"] == 1)[0]
    tables = validation_tables(model_path, data_path, val_index, feats=feats, cols=cols)
    report = {**tr, "classes": clf.classes, "arch": tr.get("arch") or
              ("cnn" if key == "nm" else "mlp"), "threshold": clf.confidence_threshold,
              "tables": tables}
    return write_model_card(model_path, report, provenance, clf.metadata["descriptor"],
                            command=command, extra=extra)


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="rewrite a model card from model + dataset")
    ap.add_argument("model")
    ap.add_argument("--data", default="data/crystal.h5")
    ap.add_argument("--command", default=None, help="retraining command shown in the card")
    ap.add_argument("--extra", default=None, help="markdown file appended before 'Retrain'")
    a = ap.parse_args()
    extra = Path(a.extra).read_text() if a.extra else ""
    print(rebuild_card(a.model, a.data, a.command, extra))
    sys.exit(0)
