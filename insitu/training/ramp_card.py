"""Model card of an auto-labelled ramp model (``insitu ramp train``; Neighbors Map paper,
Sec. 3.3.2 / 3.4.2): descriptor, the labelling rules, the runs used for training and for
validation (velocity seeds), the labelled snapshots, the result and the retraining command.
Written by code from the training report, never by hand.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from pathlib import Path

from insitu.training.model_card import accuracy_text, mc_dropout_text, retrain_block, write_card
from insitu.training.ramp_systems import RampSystem

__all__ = ["write_ramp_card", "runs_table", "retrain_command"]


def _window(w: list | None) -> str:
    return "none" if not w else f"{w[0]:.0f}-{w[1]:.0f}"


def _kelvin(t: float | None) -> str:
    return "n/a" if t is None else f"{t:.0f}"


def _nprocs_option(runs) -> str:
    """``--nprocs N `` when every run's ``log.lammps`` names the same N MPI ranks (an MD
    trajectory depends on the decomposition: the same seed on other ranks is another run);
    empty when unknown."""
    found = set()
    for r in runs:
        log = Path(r["dir"]) / "log.lammps"
        m = re.search(r"Loop time of \S+ on (\d+) procs", log.read_text()) \
            if log.is_file() else None
        found.add(int(m.group(1)) if m else None)
    return f"--nprocs {found.pop()} " if len(found) == 1 and None not in found else ""


def runs_table(runs: Sequence[dict]) -> list[str]:
    """Markdown rows of the runs (dicts with ``dir``, ``seed``, ``role`` and ``windows``, the
    labelling info of the run): what each run's own evidence gave."""
    lines = ["| role | run | velocity seed | PE jump (K) | fcc (K) | T_g slope change (K) | "
             "supercooled liquid (K) | amorphous below (K) | dropped |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        w = r["windows"]
        dropped = sum((w.get("dropped") or {}).values())
        lines.append(
            f"| {r['role']} | `{r['dir']}` | {r['seed']} | {_kelvin(w.get('t_pe_jump'))} | "
            f"{_window(w.get('fcc_window'))} | {_kelvin(w.get('t_slope_change'))} | "
            f"{_window(w.get('supercooled_liquid_window'))} | "
            f"{_kelvin(w.get('amorphous_below'))} | {dropped} |")
    return lines


def retrain_command(system: RampSystem, runs: Sequence[dict], report: dict,
                    atoms_per_snapshot: int | None) -> str:
    """The ``insitu ramp train`` command line that reproduces a model from its runs."""
    train = " ".join(r["dir"] for r in runs if r["role"] == "training")
    val = " ".join(r["dir"] for r in runs if r["role"] == "validation")
    cmd = f"insitu ramp train {system.name} --data {train}"
    if val:
        cmd += f" --val-data {val}"
    if atoms_per_snapshot:
        cmd += f" --atoms-per-snapshot {atoms_per_snapshot}"
    return cmd + f" --epochs {report.get('epochs')} --seed {report.get('seed')}"


def write_ramp_card(system: RampSystem, out: str | Path, report: dict, runs: Sequence[dict],
                    table: Sequence[dict], atoms_per_snapshot: int | None = None) -> Path:
    """Write the card of ramp model ``out`` (same stem, ``.md``) from its training report,
    its runs (:func:`runs_table`) and its labelled snapshots ``table`` (rows of
    :func:`insitu.training.ramp_training.build_ramp_dataset` tagged with run, seed and
    role).  Returns the card's path."""
    classes = system.classes
    d = system.descriptor
    train_seeds = [r["seed"] for r in runs if r["role"] == "training"]
    val_seeds = [r["seed"] for r in runs if r["role"] == "validation"]
    n_snap = {role: {c: sum(1 for t in table if t["role"] == role and t["cls"] == c)
                     for c in classes} for role in ("training", "validation")}
    lines = [f"# {Path(out).name}", "",
             f"Neighbors Map + CNN (paper's Appendix A architecture) classifying "
             f"{', '.join(classes)} environments for the {system.name} ramp "
             f"(`lammps_inputs/{system.script}`), trained without per-atom annotation: whole "
             "snapshots are labelled from evidence in the run itself (Neighbors Map paper, "
             "Sec. 3.2 / 3.3.2 / 3.4.2).", "",
             "## Descriptor", "",
             f"- Neighbors Map, cutoff {d['cutoff']} A, n_G = {d['n_grid']}, gamma = "
             f"{d['gamma']}, beta = {d['beta']}, channels: "
             + ("1 (geometric)" if not d["channel_weights"] else
                f"{len(d['channel_weights'])}, weights {d['channel_weights']} "
                f"(types {system.atom_types})"),
             f"- atom types: {system.atom_types}", "",
             "## Seeds: training vs validation", "",
             f"- training runs (velocity seeds): {train_seeds}",
             f"- validation runs (velocity seeds, whole runs not used for training): "
             f"{val_seeds or 'none (split by snapshot)'}",
             "- in-situ validation and the demos must use other seeds still (tests check the "
             "seeds recorded in the metadata, `training_seeds` / `validation_seeds`)", "",
             "## Labelling (per run, from its own evidence)", "",
             f"Rules (`{system.label.__name__}`, parameters {system.windows}):", ""]
    lines += ["    " + ln for ln in inspect.cleandoc(system.label.__doc__ or "").splitlines()]
    if system.labelling_note:
        lines += ["", system.labelling_note]
    if system.augment:
        lines += ["", "Augmentation (the paper's Sec. 3.2 recipe for hot crystals, training "
                  "snapshots of the crystal class only): " + "; ".join(
                      f"{c}: one copy per snapshot with N(0, {a[1]} A) noise on "
                      f"{int(100 * a[0])} % of the atoms" for c, a in system.augment.items())]
    lines += ["", "What each run's evidence gave (set-point temperatures):", ""]
    lines += runs_table(runs)
    lines += ["", "## Labelled snapshots", "",
              "Per class, training: " + ", ".join(f"{c} {n_snap['training'][c]}" for c in classes)
              + "; validation: " + ", ".join(f"{c} {n_snap['validation'][c]}" for c in classes)
              + f"; {report.get('n_train')} training and {report.get('n_val')} validation "
              "environments (no snapshot, no run in both sets when validation runs are "
              "given).", "",
              "| role | seed | class | step | set-point (K) | measured T (K) | PE (eV/atom) | "
              "atoms |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['role']} | {r['seed']} | {r['cls']} | {r['step']} | {r['target_K']} | "
              f"{r['temperature_K']} | {r['pe_per_atom']} | {r['atoms']} |" for r in table]
    lines += ["", "## Result", "",
              f"- epochs {report.get('epochs')}, seed {report.get('seed')}, class weights "
              f"{system.class_weights or 'none'}, {report.get('n_parameters')} parameters, "
              f"{report.get('seconds')} s",
              f"- validation accuracy (validation runs' labelled snapshots): "
              f"{accuracy_text(report.get('val_accuracy'))}",
              f"- confusion (rows truth, columns predicted, order {classes}): "
              f"{report.get('confusion')}", "",
              "Caveat: the labels are per snapshot, so the accuracy measures how well the "
              "model separates the labelled states, not per-atom truth inside the transitions "
              "(dropped from the labels). The in-situ ramp figures are in "
              f"`examples/{system.name}_ramp/validation*.txt`.",
              "", mc_dropout_text(out), "", "## Retrain", "",
              "Runs with snapshots: `insitu ramp run " + system.name + " --dump --seed SEED "
              + _nprocs_option(runs) + "--outdir DIR` for each seed, then:", "",
              retrain_block(retrain_command(system, runs, report, atoms_per_snapshot)), "",
              "Training summary, runs and seeds are also in the ONNX metadata "
              "(`insitu.training`).", ""]
    return write_card(out, "\n".join(lines))
