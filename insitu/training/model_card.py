"""Model cards: the ``<model>.md`` written next to every exported ``.onnx`` model, saying
what it was trained on, how, how well it does and how to retrain it.  Two kinds share the
helpers here: the crystal classifiers (data of the Neighbors Map paper's Sec. 3.1,
:func:`write_crystal_card`) and the auto-labelled ramp models (Sec. 3.3.2 / 3.4.2,
:func:`insitu.training.ramp_card.write_ramp_card`, which uses the helpers here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from insitu.resources import source_checkout
from insitu.training.nets import NM_ARCH_TEXT

__all__ = ["ARCH_TEXT", "PARAM_NOTE", "pct", "accuracy_text", "retrain_block", "write_card",
           "write_crystal_card", "mc_dropout_text"]

ARCH_TEXT = {
    "cnn": "Neighbors Map CNN of Allera et al., Appendix A: Conv(C,16,5) - ReLU - "
           "Conv(16,32,3) - ReLU - MaxPool(2) - Conv(32,16,3) - ReLU - Conv(16,16,3,stride 2) - "
           "ReLU - Conv(16,32,2,stride 2) - ReLU - Flatten(512) - Dropout(0.5) - Dense(24) - "
           "ReLU - BatchNorm - Dense(K); softmax inside the exported graph. A constant input "
           "scale (1/std of the training maps) is a graph constant, not a parameter.",
    "mlp": "MLP on BOO features: standardisation (training mean/std, inside the graph) - "
           "Dense(64) - ReLU - Dropout(0.1) - Dense(64) - ReLU - Dropout(0.1) - Dense(K); "
           "softmax inside the exported graph.",
    "mlp-last": "MLP on BOO features: standardisation (training mean/std, inside the graph) "
                "- Dense(64) - ReLU - Dense(64) - ReLU - Dropout(0.5) - Dense(K); softmax "
                "inside the exported graph. Dropout before the output layer only, so the "
                "MC-dropout head run T times per atom is one 64 x K layer (the costlier "
                "'mlp', dropout after both hidden layers, is also available).",
}

ARCH_TEXT.update(NM_ARCH_TEXT, paper=ARCH_TEXT["cnn"])

PARAM_NOTE = {"cnn": " (the paper's 26,490 for 1 channel and 2 classes, +75 for 5 classes)"}
PARAM_NOTE["paper"] = PARAM_NOTE["cnn"]


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal ("n/a" for None or NaN)."""
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}"


def accuracy_text(value: float | None) -> str:
    """A validation accuracy as "97.25 %" ("n/a" without one)."""
    return "n/a" if value is None else f"{100 * value:.2f} %"


def retrain_block(command: str) -> str:
    """The retraining command as a fenced code block."""
    return f"```\n{command}\n```"


def write_card(out: str | Path, text: str) -> Path:
    """Write ``text`` as the card of model ``out`` (same stem, ``.md``); returns its path."""
    path = Path(out).with_suffix(".md")
    path.write_text(text)
    return path


def _throughput_line(name: str) -> str:
    """Measured inference throughput of model ``name`` from the source checkout's
    ``benchmarks/results.json``; a neutral line when there is none."""
    hint = "Inference throughput: run `.venv/bin/python benchmarks/inference.py`."
    root = source_checkout()
    if root is None:
        return hint
    try:
        inf = json.loads((root / "benchmarks" / "results.json").read_text())["inference"]
        m = inf["models"][name]
        return (f"Inference throughput (onnxruntime, 1 thread, fp32, batch "
                f"{inf.get('batch_size')}): **{m['atoms_per_s']:.0f} atoms/s** "
                f"(model only); descriptor + model: {m.get('end_to_end_atoms_per_s', 0):.0f} "
                f"atoms/s. From `{inf.get('command')}` ({inf.get('date')}).")
    except Exception:  # noqa: BLE001 - results not measured yet
        return hint


COLD = (", and the perfect lattice it starts from as a 0 K snapshot (without it cold "
        "crystals, e.g. relaxed structures, were unfamiliar to the models)")


def mc_dropout_text(model: str | Path) -> str:
    """One paragraph on the model's MC dropout (ARISE Supp. Eqs. 4-5), read from its
    metadata: passes, rates, seed, MI threshold and how it was chosen."""
    from insitu.model import Classifier

    if not Path(model).is_file():  # a card written before its model (tests)
        return ""
    clf = Classifier.load(model, mc_passes=1, screen=False)
    if clf.mc is None:
        return "No MC dropout (the graph has no dropout-mask input): one deterministic pass."
    cal = clf.metadata.get("mc_calibration") or {}
    how = (f"{cal.get('rule', 'chosen on validation data')}, on {cal['atoms']} validation "
           f"atoms ({cal['dataset']}) at T = {cal['passes']} ({100 * cal['fraction_above']:.2f} "
           f"% of them above it); their MI percentiles 50/90/99/99.9: "
           f"{', '.join(f'{v:.4f}' for v in cal['mi_percentiles_50_90_99_99.9'])} bits"
           if cal else "not calibrated (log2 K: no atom is unknown by MI)")
    return (f"MC dropout (ARISE Supp. Eqs. 4-5): by default T = {clf.mc.passes} stochastic "
            f"passes of the dense head (dropout rates {list(clf.mc.rates)} on "
            f"{list(clf.mc.units)} units, masks hashed from (seed {clf.mc.seed}, atom id, "
            f"step, pass)); labels come from the mean probabilities, and an atom whose mutual "
            f"information exceeds {clf.mc.mi_threshold:.4f} bits is `unknown`. The threshold "
            f"is {how}. `mc_passes=1` (attach option, `Classifier.load(..., mc_passes=1)`, "
            f"`insitu classify --mc-passes 1`) gives the deterministic network."
            + novelty_text(clf.metadata.get("novelty")))


def screen_paragraph(model: str | Path) -> str:
    """The model's screening network (:mod:`insitu.model.screen`) as a paragraph after a
    blank line, or '' without one."""
    from .screen import screen_text

    text = screen_text(model) if Path(model).is_file() else ""
    return f"\n\n{text}" if text else ""


def novelty_text(novelty: dict | None) -> str:
    """A sentence on the model's feature-space novelty (:mod:`insitu.training.novelty`)."""
    if not novelty:
        return ""
    what = "descriptor features" if novelty.get("source") == "input" else "trunk features"
    return (f" Feature-space novelty (`insitu.training.novelty`): one Gaussian per class "
            f"({', '.join(novelty['classes_fitted'])}) fitted to the {what} of "
            f"{novelty['train_atoms']} training atoms on their first "
            f"{novelty['n_components']} of {novelty['feature_dimension']} principal components; "
            f"an atom whose novelty exceeds {novelty['threshold']:.4g} ({novelty['rule']}, "
            f"{novelty['val_atoms']} validation atoms, {100 * novelty['fraction_above']:.2f} % "
            f"of them above it; {novelty['dataset']}) is `unknown` in any number of passes.")


def write_crystal_card(out: str | Path, report: dict, provenance: dict, desc_meta: dict,
                       command: str | None = None, extra: str = "") -> Path:
    """Card of a crystal classifier (``insitu train fit|crystal``): data, parameters,
    validation tables, the retraining command."""
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
    cold = COLD if any(run.get("cold_snapshot") for run in provenance.get("runs", [])) else ""
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

{mc_dropout_text(out)}{screen_paragraph(out)}

Use: `Classifier.load("{out.as_posix()}").classify(frame)`, `insitu classify DUMP --model
{out.as_posix()}`, or in situ with `fix python/invoke` (see README).

## Data

Generated by `insitu train data` (LAMMPS {provenance.get('created', '')[:10]}), following the
Neighbors Map paper, Sec. 3.1: NPT ramp (100 K -> 2/3 T_m over {provenance.get('ramp_ps')}
ps, snapshot every 1 ps) for each crystal{cold}; liquids melted at 2 T_m for 6 ps, then cooled
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
{pct(s.get('crystal'))} %, liquid atoms labelled liquid {pct(s.get('liquid_as_liquid'))} %).

{tables.get('markdown', '')}

{_throughput_line(name)}
{extra}
## Retrain from scratch

{retrain_block(cmd)}

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
- Out-of-distribution input is not flagged reliably by the confidence, nor always by the
  mutual information of MC dropout: uniformly random points with overlapping atoms (not a
  physical liquid) come out as confident `cubic_diamond` with low MI for the Neighbors Map
  model, B2 seen through one geometric channel is bcc, an fcc stacking fault is fcc (see
  "Uncertainty" below where measured). Physical liquids (LAMMPS melts of Fe, Al, Zr, Si, Ni)
  are labelled `liquid`.
- fcc with both high temperature (> 0.45 T_m) and >= 40 % missing atoms is the weakest cell
  of the Neighbors Map model (see the table), mostly confused with hcp.
"""
    return write_card(out, text)
