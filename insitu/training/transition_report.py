"""Near-transition validation of a crystal classifier and its model card (``insitu train
card`` on a ``--protocol transition`` dataset).

Everything here is recomputed from the datasets (validation runs and held-out elements,
never a training run) with the current descriptor code (fingerprints checked by
:func:`insitu.training.report.read_dataset`), through the runtime's prediction path
(:func:`insitu.training.report.predict_rows`): the near-transition table (element x class
x T/T_m bin x missing fraction, LAMMPS ``compute cna/atom`` beside it) and the must-show
figures of the crystal models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from insitu.training.cna_reference import cna_correct_code
from insitu.training.distill import distill_arguments, distill_text
from insitu.training.model_card import (
    ARCH_TEXT,
    PARAM_NOTE,
    mc_dropout_text,
    pct,
    retrain_block,
    screen_paragraph,
    write_card,
)
from insitu.training.nets import BOO_ARCHITECTURES
from insitu.training.nm_crop import crop_note
from insitu.training.report import predict_rows, read_dataset
from insitu.training.transition_dataset import heldout_path
from insitu.training.transition_labels import hysteresis_melting_point
from insitu.training.transition_runs import (
    HELDOUT_ELEMENTS,
    TRAIN_ELEMENTS,
    assert_disjoint_runs,
)

__all__ = ["TM_BINS", "evaluation_rows", "near_transition_table", "must_show",
           "write_transition_card", "consensus_of"]

TM_BINS = ((0.0, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0), (1.0, 1.05), (1.05, 1.1),
           (1.1, 1.2), (1.2, 9.9))


def _bin_name(lo: float, hi: float) -> str:
    return f"< {hi:g}" if lo == 0 else (f">= {lo:g}" if hi > 9 else f"{lo:g}-{hi:g}")


def evaluation_rows(model_path, data_path, index_main=None) -> dict:
    """Predictions on every evaluation row: the validation runs of ``data_path``
    (``split`` 1) and the whole held-out file beside it. Returns per-row arrays (``truth``,
    ``pred``, ``unknown``, ``element``, ``t_over_tm``, ``missing``, ``kind``, ``cna``,
    ``heldout``) and the class names."""
    import h5py

    from insitu.model import Classifier

    clf = Classifier.load(model_path, n_threads=1)
    parts = []
    for path, heldout in ((Path(data_path), False), (heldout_path(data_path), True)):
        if not path.is_file():
            continue
        feats, cols, _ = read_dataset(path, clf)
        with h5py.File(path, "r") as h5:
            names = json.loads(h5.attrs["materials"])
        idx = np.nonzero(cols["split"] == 1)[0] if index_main is None or heldout \
            else np.asarray(index_main)
        if heldout and np.any(cols["role"][idx] != 2):
            raise ValueError(f"{path}: held-out file holds rows of other roles")
        if np.any(cols["role"][idx] == 0) or np.any(cols["split"][idx] != 1):
            raise ValueError(f"{path}: evaluation rows include training rows")
        p = predict_rows(clf, feats, idx, path, cols)
        parts.append(dict(truth=cols["label"][idx], pred=p["pred"], unknown=p["unknown"],
                          own_pred=p.get("own_pred", p["pred"]),
                          element=np.array(names, dtype=object)[cols["material"][idx]],
                          t_over_tm=cols["t_over_tm"][idx],
                          missing=np.round(cols["missing_fraction"][idx], 3),
                          kind=cols["kind"][idx], cna=cols["cna"][idx],
                          role=cols["role"][idx], heldout=np.full(len(idx), heldout)))
    rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    rows["classes"] = clf.classes
    return rows


def _acc(rows, sel, unknown_wrong=False):
    if not sel.any():
        return None
    ok = rows["truth"][sel] == rows["pred"][sel]
    if unknown_wrong:
        ok &= ~rows["unknown"][sel]
    return float(ok.mean())


def near_transition_table(rows: dict) -> str:
    """Markdown: accuracy % per element x true class x missing fraction (0, 0.5, all) x
    T/T_m bin, LAMMPS cna/atom in parentheses (n/a: no such CNA class)."""
    classes = rows["classes"]
    head = ["element", "class", "missing"] + [_bin_name(*b) for b in TM_BINS] + ["atoms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    tm = rows["t_over_tm"]
    elements = list(dict.fromkeys(rows["element"][~rows["heldout"]])) + \
        list(dict.fromkeys(rows["element"][rows["heldout"]]))
    for el in elements:
        sel_e = rows["element"] == el
        tag = " (held out)" if rows["heldout"][sel_e].any() else ""
        for ci in np.unique(rows["truth"][sel_e]):
            cname = classes[ci]
            cna_ok = cna_correct_code(cname, rows["cna"])
            for x in (0.0, 0.5, "all"):
                sel = sel_e & (rows["truth"] == ci) & (True if x == "all"
                                                       else rows["missing"] == x)
                if not sel.any():
                    continue
                cells = []
                for lo, hi in TM_BINS:
                    s = sel & (tm >= lo) & (tm < hi)
                    c = None if cna_ok is None or not s.any() else float(cna_ok[s].mean())
                    cells.append(f"{pct(_acc(rows, s))} ({pct(c)})" if s.any() else "-")
                lines.append(f"| {el}{tag} | {cname} | {x} | " + " | ".join(cells)
                             + f" | {int(sel.sum())} |")
    return "\n".join(lines)


def must_show(rows: dict) -> list[dict]:
    """The must-show figures (issue: crystal models near transitions), each per element
    (held-out marked) with its minimum: accuracy (and with unknown counted as wrong)."""
    classes = rows["classes"]
    liquid = classes.index("liquid")
    tm, x = rows["t_over_tm"], rows["missing"]
    crystal = rows["truth"] != liquid
    figures = [
        ("superheated crystals 0.95 <= T/T_m <= 1.1, no missing atoms", ">= 95 %",
         crystal & (tm >= 0.95) & (tm <= 1.1) & (x == 0)),
        ("crystals 1.0 < T/T_m <= 1.1 (above T_m), no missing atoms", ">= 95 %",
         crystal & (tm > 1.0) & (tm <= 1.1) & (x == 0)),
        ("supercooled liquids 0.7 <= T/T_m <= 0.9 labelled liquid, no missing atoms",
         ">= 98 %", ~crystal & (rows["kind"] == 1) & (tm >= 0.7) & (tm <= 0.9) & (x == 0)),
        ("thermal crystals T/T_m <= 0.9, no missing atoms", ">= 99 %",
         crystal & (tm <= 0.9) & (x == 0)),
        ("liquids (all T), no missing atoms", ">= 98 %", ~crystal & (x == 0)),
        ("crystals with 50 % missing atoms, T/T_m <= 0.9", ">= 90 %",
         crystal & (x == 0.5) & (tm <= 0.9)),
        ("crystals with 50 % missing atoms, all T", ">= 90 %", crystal & (x == 0.5)),
        ("liquids with 50 % missing atoms", ">= 90 %", ~crystal & (x == 0.5)),
        ("all evaluation atoms (every missing fraction)", ">= 99 %", np.ones(len(tm), bool)),
    ]
    out = []
    for name, target, sel in figures:
        per = {}
        for el in dict.fromkeys(rows["element"]):
            s = sel & (rows["element"] == el)
            if s.any():
                per[str(el)] = dict(acc=_acc(rows, s), acc_unknown_wrong=_acc(rows, s, True),
                                    atoms=int(s.sum()), heldout=bool(rows["heldout"][s][0]))
        accs = [v["acc"] for v in per.values()]
        out.append(dict(figure=name, target=target, per_element=per,
                        min=min(accs) if accs else None,
                        train_elements=_acc(rows, sel & ~rows["heldout"]),
                        heldout_elements=_acc(rows, sel & rows["heldout"])))
    return out


def _must_show_md(figs) -> str:
    lines = ["| figure | target | min over elements | training elements | held-out "
             "elements | per element (held out: *) |", "|---|---|---|---|---|---|"]
    for f in figs:
        per = ", ".join(f"{el}{'*' if v['heldout'] else ''} {pct(v['acc'])}"
                        for el, v in f["per_element"].items())
        lines.append(f"| {f['figure']} | {f['target']} | {pct(f['min'])} | "
                     f"{pct(f['train_elements'])} | {pct(f['heldout_elements'])} | {per} |")
    return "\n".join(lines)


def consensus_of(model_path):
    """The model's neighbour consensus rule (None: per-atom labels)."""
    from insitu.model import Classifier

    return Classifier.load(model_path).consensus


def _consensus_md(consensus, rows) -> str:
    """The rule and the must-show figures of the atoms' own labels beside (both shown)."""
    if consensus is None:
        return ""
    own = must_show(dict(rows, pred=rows["own_pred"]))
    return (f"\nNeighbour consensus (`insitu.model.consensus`): {consensus.describe()} "
            "(in situ the ghost atoms' probabilities come from the ranks that own them, so "
            "the ghost cutoff stays the descriptor's; `consensus=no` in `insitu_attach` "
            "gives the per-atom labels). "
            "Every evaluation atom above was classified within its whole snapshot copy "
            "(rebuilt from the run's dump as the dataset drew it). The same figures from "
            "the atoms' own labels (no consensus):\n\n" + _must_show_md(own) + "\n")


def _evidence_md(provenance) -> str:
    tm = {m["name"]: m["t_melt"] for m in provenance["materials"]}
    lines = ["| run | role | seed | result (from the run's PE, MSD, CNA) | labelled | "
             "dropped |", "|---|---|---|---|---|---|"]
    for run in provenance["runs"]:
        info, snaps = run["info"], run["snapshots"]
        if run["kind"] == "heat":
            t_c = max((s["temperature"] for s in snaps if s["label"] not in (None, "liquid")),
                      default=0.0)
            res = (f"last crystal snapshot {t_c:.0f} K ({t_c / tm[run['material']]:.2f} T_m), "
                   f"PE jump at {info['t_jump']:.0f} K "
                   f"({info['t_jump'] / tm[run['material']]:.2f} T_m)")
        else:
            t = info.get("t_crystallisation")
            res = ("no crystallisation down to "
                   f"{min(s['temperature'] for s in snaps):.0f} K" if t is None else
                   f"PE drop or CNA order from {t:.0f} K ({t / tm[run['material']]:.2f} T_m): "
                   "taken as crystallisation, snapshots from 2 ps before dropped")
        if run["kind"] == "quench" and info.get("t_crystallisation") is not None:
            heat = [r for r in provenance["runs"] if r["material"] == run["material"]
                    and r["role"] == run["role"] and r["kind"] == "heat"]
            if heat:
                t_m = hysteresis_melting_point(heat[0]["info"]["t_jump"],
                                               info["t_crystallisation"])
                res += f"; hysteresis T_m estimate {t_m:.0f} K"
        kept = sum(s["label"] is not None for s in snaps)
        lines.append(f"| {run['name']} | {run['role']} | {run['seed']} | {res} | {kept} | "
                     f"{len(snaps) - kept} |")
    return "\n".join(lines)


def element_arguments(provenance: dict) -> str:
    """``--materials`` / ``--heldout`` of the data command that made ``provenance``'s
    dataset, where its elements are not the defaults."""
    out = ""
    for flag, key, default in (("--materials", "train_elements", TRAIN_ELEMENTS),
                               ("--heldout", "heldout_elements", HELDOUT_ELEMENTS)):
        if tuple(provenance[key]) != tuple(default):
            out += f" {flag} {','.join(provenance[key])}"
    return out


def _same_element_note(provenance: dict) -> str:
    """Held-out potentials of an element that is also trained on (another potential)."""
    def chemical(m):
        return m["element"].split("(")[0]

    trained = {chemical(m) for m in provenance["materials"]
               if m["name"] in provenance["train_elements"]}
    same = [m["name"] for m in provenance["materials"]
            if m["name"] in provenance["heldout_elements"] and chemical(m) in trained]
    return "" if not same else (f" ({', '.join(same)}: another potential of a training "
                                "element, held out as a potential)")


def write_transition_card(model_path, data_path, report: dict, provenance: dict,
                          command: str | None = None, extra: str = "") -> Path:
    """Write the card of a crystal model trained on a near-transition dataset."""
    out = Path(model_path)
    assert_disjoint_runs(provenance["runs"])
    rows = evaluation_rows(out, data_path)
    figs = must_show(rows)
    heldout_text = ", ".join(provenance["heldout_elements"]) + _same_element_note(provenance)
    consensus = consensus_of(out)
    tr = report
    key = "boo" if tr["arch"] in BOO_ARCHITECTURES else "nm"
    mats = "\n".join(
        f"| {m['name']} | {m['structure']} | `{m['potential']}` ({m['pair_style']}) | "
        f"{m['t_melt']:.0f} | {provenance['t_melt_sources'][m['name']]} | "
        f"{'held out' if m['name'] in provenance['heldout_elements'] else 'training'} |"
        for m in provenance["materials"])
    hist = "\n".join(f"| {h['epoch']} | {h['loss']:.4f} | {100 * h['train_accuracy']:.2f} | "
                     f"{100 * h.get('val_accuracy_subset', float('nan')):.2f} |"
                     for h in tr.get("history", []))
    arch = f" --arch {tr['arch']}" if key == "nm" or tr["arch"] != "mlp" else ""
    if "class_weights" in tr and tr["class_weights"] is None:  # unweighted cross-entropy
        arch += " --class-weights none"
    fp = tr.get("descriptor_fingerprint") or {}
    if tr.get("cropped_from"):  # maps cropped from the dataset's larger n_G
        arch += f" --n-grid {fp['params']['n_grid']}"
    arch += distill_arguments(tr)
    cmd = command or (f"insitu train data --protocol transition{element_arguments(provenance)} "
                      f"--out {data_path}\n"
                      f"insitu train fit --data {data_path} --descriptor {key}{arch} "
                      f"--seed {tr.get('seed')} --epochs {tr.get('epochs')} --threads 1 "
                      f"--out {out.as_posix()}\n" + (
                          "" if consensus is None else
                          f"insitu train consensus {out.as_posix()} --neighbors "
                          f"{consensus.n_neighbors} --cutoff {consensus.cutoff_angstrom:g}\n")
                      + f"insitu train card {out.as_posix()} --data {data_path}")
    text = f"""# {out.stem}

Per-atom crystal-structure classifier for `insitu`: classes {', '.join(tr['classes'])}.
Descriptor `{fp.get('kind')}` (code version {fp.get('version')}; parameters and a numerical
probe are stored in the model's metadata as its descriptor fingerprint: data or models made
by other descriptor code are refused):

```json
{json.dumps(fp.get('params'))}
```

Model: {ARCH_TEXT.get(tr['arch'], tr['arch'])}
Trainable parameters: {tr.get('n_parameters')}{crop_note(tr) or PARAM_NOTE.get(tr['arch'], '')}.
Confidence threshold {tr.get('threshold', 0.5)} (below it the runtime says `unknown`).

{mc_dropout_text(out)}{screen_paragraph(out)}

Use: `Classifier.load("{out.as_posix()}").classify(frame)`, `insitu classify DUMP --model
{out.as_posix()}`, or in situ with `fix python/invoke` (see README).

## Data: crystals heated until they melt, liquids quenched until they crystallise

Generated by `insitu train data --protocol transition` (LAMMPS,
{provenance.get('created', '')[:10]}; `insitu/training/transition_runs.py`): for every
element a periodic crystal (432-512 atoms) heated by NPT from 100 K to 1.5 T_m in 30 ps
(snapshot every 1 ps, plus the 0 K lattice), and its liquid (2 T_m, 4 ps) quenched from
1.4 T_m to 0.55 T_m in 30 ps, i.e. 2-9e13 K/s. Each snapshot is labelled by evidence from
its run (`insitu/training/transition_labels.py`), never by the temperature: crystal before
the melting PE jump (onset: PE 30 % of the latent heat above the crystal's own curve;
the 2 ps before the onset dropped)
and not diffusive (MSD over 2 ps below 0.8 A^2) and not transformed by CNA; liquid when
diffusive and before crystallisation (PE drop or > 15 % crystalline by CNA); the
snapshots around the jump or crystallisation and non-diffusive quench snapshots
(glass) are dropped. Copies with a random fraction x of the atoms removed, x in
{provenance['missing_fractions']} (training: x = 0 and two other fractions per snapshot;
validation: all), {provenance['rows_train']} (training) / {provenance['rows_val']}
(validation) random atoms per copy; training copies rescaled by U(1-j, 1+j), j =
{provenance['scale_jitter']}. Split **by run**: validation runs have other velocity seeds
than the training runs; held-out elements are in neither (their own file).

| element | class | potential | T_m used (K) | source of T_m | role |
|---|---|---|---|---|---|
{mats}

What the runs showed (T_m as above):

{_evidence_md(provenance)}

Training atoms {tr.get('n_train')} ({tr.get('n_train_groups')} snapshots), validation atoms
{tr.get('n_val')} ({tr.get('n_val_groups')} snapshots) + held-out elements.

## Training

Adam (lr {tr.get('lr')}, one-cycle schedule), cross-entropy with class weights
`{tr.get('class_weights')}`, L2 {tr.get('weight_decay')}, batch {tr.get('batch_size')},
{tr.get('epochs')} epochs, seed {tr.get('seed')}; {tr.get('seconds')} s on this machine
(2 shared cores).{distill_text(tr)}

| epoch | loss | train acc % | val acc % (5000-atom subset) |
|---|---|---|---|
{hist}

## Near-transition validation (validation runs and held-out elements)

Accuracy in % (argmax of the MC-dropout mean; `unknown` atoms counted by their argmax),
LAMMPS `compute cna/atom` on the same atoms in parentheses (liquid: CNA 'other' or
'icosahedral' counts as correct; diamond: n/a), per element, true class, missing
fraction and T/T_m bin. Crystals above 1.0 T_m are superheated, liquids below it
supercooled.

{near_transition_table(rows)}

Must-show figures (minimum over elements; training elements: their validation runs):

{_must_show_md(figs)}
{_consensus_md(consensus, rows)}
## Validation of the training elements by missing fraction (validation runs only)

{report['tables']['markdown']}
{extra}
## Retrain from scratch

{retrain_block(cmd)}

The tables above are rebuilt from the datasets by `insitu train card {out.as_posix()} --data
{data_path}` (deterministic: MC-dropout masks hashed from the dataset row).

## Limitations

- Held-out elements: {heldout_text}; the T_m of Zr_mm.eam.fs is
  the value the earlier data used (not verified), so its T/T_m bins are approximate.
- Small periodic cells (432-512 atoms) and fast ramps: the superheating limit of a
  periodic crystal is ~1.2-1.3 T_m here; slower ramps melt closer to T_m.
- No `amorphous` class; non-diffusive quench snapshots (glass) are neither trained nor
  scored.
- The descriptor treats all atom types alike (one geometric channel).
"""
    path = write_card(out, text)
    Path(data_path).with_name(f"{out.stem}.must_show.json").write_text(json.dumps(
        dict(must_show=figs, overall_validation=report["tables"]["summary"]["overall"]),
        indent=1))  # beside the dataset: the figures as numbers
    return path
