"""Auto-labelled training on the papers' ramps (Neighbors Map paper, Sec. 3.3.2 for Ni and
3.4.2 for Cu-Zr): run a ramp of ``lammps_inputs/`` with snapshots (:func:`run_ramp`), label
whole snapshots from evidence in each run (:func:`label_runs`), compute the Neighbors Maps
(:func:`build_ramp_dataset`), train the paper's CNN on some runs (velocity seeds) and
validate it on others (:func:`check_disjoint_runs`), export it with its model card
(:func:`train_ramp_model`).  :func:`log_from_snapshots` classifies a ramp's snapshots into an
in-situ-style log, to validate or plot a ramp whose in-situ run is not available.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from insitu.frame import Frame
from insitu.io.lammps_dump import read_lammps_dump
from insitu.io.phase_log import PhaseLog
from insitu.launch import lammps_env, mpirun_command
from insitu.resources import lammps_inputs_dir, model_path
from insitu.training.autolabel import read_run_info, read_snapshot_index
from insitu.training.ramp_systems import RampSystem, get_ramp_system

__all__ = ["run_ramp", "build_ramp_dataset", "label_runs", "check_disjoint_runs",
           "train_ramp_model", "log_from_snapshots"]


def _system(system: str | RampSystem) -> RampSystem:
    return system if isinstance(system, RampSystem) else get_ramp_system(system)


def run_ramp(system: str | RampSystem, outdir: str | Path, nprocs: int = 2, dump: bool = True,
             model: str | Path | None = None,
             extra_vars: Mapping[str, object] | None = None) -> Path:
    """Run a system's ramp input (quick defaults) with ``mpirun -np nprocs lmp``; with
    ``dump`` it writes the snapshots for training to ``outdir/snapshots``.  ``model`` (a
    path or a shipped model's name) switches the in-situ analysis on.  Returns outdir."""
    ramp = _system(system)
    variables: dict[str, object] = {"outdir": outdir, "dump": 1 if dump else 0}
    if model:
        variables["model"] = model_path(str(model))
    variables.update(extra_vars or {})
    cmd = mpirun_command(nprocs, lammps_inputs_dir() / ramp.script, variables)
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, env=lammps_env(), check=True)
    return Path(outdir)


def build_ramp_dataset(labelled: dict, descriptor, classes: Sequence[str],
                       atoms_per_snapshot: int | None = None, seed: int = 0,
                       augment: dict | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Descriptors of the labelled snapshots: (features, labels, groups, table) where groups
    is the snapshot number (the validation split takes whole snapshots; an augmented copy
    stays in its snapshot's group) and table lists (class, step, set-point, PE/atom, atoms
    used) per snapshot.  ``augment`` = {class: (fraction, sigma)} adds, for each snapshot of
    that class, a copy with Gaussian noise N(0, sigma) on a random ``fraction`` of the atoms."""
    rng = np.random.default_rng(seed)
    augment = augment or {}
    feats, labels, groups, table = [], [], [], []
    g = 0
    for k, c in enumerate(classes):
        for s in labelled[c]:
            frame = read_lammps_dump(s.path)
            frames = [frame]
            if c in augment:
                frac, sigma = augment[c]
                pos = frame.positions.copy()
                pick = rng.random(len(pos)) < frac
                pos[pick] += rng.normal(0.0, sigma, size=(int(pick.sum()), 3))
                frames.append(Frame(pos, frame.cell, frame.pbc, frame.types, frame.ids,
                                    frame.step))
            n_used = 0
            for fr in frames:
                x = descriptor.compute(fr)
                if atoms_per_snapshot and len(x) > atoms_per_snapshot:
                    x = x[np.sort(rng.choice(len(x), atoms_per_snapshot, replace=False))]
                feats.append(x.astype(np.float32))
                labels.append(np.full(len(x), k, np.int64))
                groups.append(np.full(len(x), g, np.int64))
                n_used += len(x)
            table.append(dict(cls=c, step=s.step, target_K=round(s.target, 1),
                              temperature_K=round(s.temperature, 1),
                              pe_per_atom=round(s.pe_per_atom, 5), atoms=n_used,
                              augmented=c in augment))
            g += 1
    return np.concatenate(feats), np.concatenate(labels), np.concatenate(groups), table


def label_runs(system: str | RampSystem, data_dirs: Sequence[str | Path],
               t_melt: float | None = None) -> list[dict]:
    """Label every run of ``data_dirs`` with the system's rules (each run its own PE jump,
    slope change and MSD evidence): [{dir, seed, labelled}], the seed read from
    ``snapshots/run.txt`` (None for a run without it)."""
    ramp = _system(system)
    return [dict(dir=str(d), seed=read_run_info(d).get("seed"),
                 labelled=ramp.label_snapshots(read_snapshot_index(d), t_melt=t_melt))
            for d in data_dirs]


def check_disjoint_runs(training: Sequence[dict], validation: Sequence[dict]) -> None:
    """Refuse a validation run that is a training run: the same folder, or the same velocity
    seed (then the same trajectory).  Runs are dicts with ``dir`` and ``seed``."""
    seeds = {r["seed"] for r in training if r.get("seed") is not None}
    dirs = {Path(r["dir"]).resolve() for r in training}
    for r in validation:
        if Path(r["dir"]).resolve() in dirs:
            raise ValueError(f"validation run {r['dir']} is also a training run")
        if r.get("seed") is not None and r["seed"] in seeds:
            raise ValueError(f"validation run {r['dir']} has the velocity seed {r['seed']} of "
                             "a training run (same trajectory): use another seed")


def _runs_dataset(runs: Sequence[dict], descriptor, classes, atoms_per_snapshot, seed,
                  augment, role: str):
    """:func:`build_ramp_dataset` over several runs, groups numbered across runs, each table
    row tagged with its run and role."""
    parts, offset = [], 0
    for r in runs:
        x, y, g, table = build_ramp_dataset(r["labelled"], descriptor, classes,
                                            atoms_per_snapshot, seed, augment)
        for row in table:
            row.update(run=r["dir"], seed=r["seed"], role=role)
        parts.append((x, y, g + offset, table))
        offset += int(g.max()) + 1
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), [row for p in parts for row in p[3]], offset)


def train_ramp_model(system: str | RampSystem, data_dir: str | Path | Sequence[str | Path],
                     out: str | Path | None = None, epochs: int = 10, seed: int = 0,
                     atoms_per_snapshot: int | None = None, threshold: float = 0.5,
                     t_melt: float | None = None, card: bool = True, progress: bool = False,
                     threads: int | None = None,
                     val_data: Sequence[str | Path] | None = None) -> tuple[Path, dict]:
    """Auto-labelled training on the snapshots of one or more ramp runs (``-var dump 1``,
    e.g. several velocity seeds): label whole snapshots (the system's rules, run by run),
    compute the Neighbors Maps, train the paper's CNN and export ONNX (``out``, default the
    shipped model path) with its card.  Validation: the runs ``val_data`` (other seeds, never
    a training run: :func:`check_disjoint_runs`), else a split by snapshot.  The training
    and validation seeds are stored in the metadata (``training_seeds``,
    ``validation_seeds``).  Returns (path, report).  Needs the ``training`` extra."""
    from insitu.analysis.validation import jsonable
    from insitu.descriptors import NeighborsMap
    from insitu.training.export import export_onnx
    from insitu.training.mc_calibration import DEFAULT_MC_PASSES, calibrate_mi_threshold
    from insitu.training.ramp_card import write_ramp_card
    from insitu.training.train import train_classifier, training_summary

    ramp = _system(system)
    classes = ramp.classes
    out = Path(out) if out else model_path(ramp.model)
    dirs = [data_dir] if isinstance(data_dir, (str, Path)) else list(data_dir)
    train_runs = label_runs(ramp, dirs, t_melt)
    val_runs = label_runs(ramp, val_data or [], t_melt)
    check_disjoint_runs(train_runs, val_runs)
    descriptor = NeighborsMap(**ramp.descriptor)
    x, y, groups, table, n_groups = _runs_dataset(train_runs, descriptor, classes,
                                                  atoms_per_snapshot, seed, ramp.augment,
                                                  "training")
    val_mask = None
    if val_runs:
        xv, yv, gv, tv, _ = _runs_dataset(val_runs, descriptor, classes, atoms_per_snapshot,
                                          seed, None, "validation")
        val_mask = np.concatenate([np.zeros(len(y), bool), np.ones(len(yv), bool)])
        x, y, groups = np.concatenate([x, xv]), np.concatenate([y, yv]), \
            np.concatenate([groups, gv + n_groups])
        table += tv
    cw = ramp.class_weights
    weights = [cw[c] for c in classes] if cw else None
    model, report = train_classifier(x, y, groups, classes, descriptor, arch="cnn",
                                     epochs=epochs, class_weights=weights, seed=seed,
                                     progress=progress, threads=threads, val_mask=val_mask)
    runs = [dict(dir=r["dir"], seed=r["seed"], role=role, windows=r["labelled"]["_info"])
            for role, rs in (("training", train_runs), ("validation", val_runs)) for r in rs]
    summary = training_summary(report, dataset=", ".join(str(d) for d in dirs), extra={
        "labelling": "whole snapshots labelled from evidence in each run (PE jump, PE(T) "
                     "slope change, MSD, CNA), by the system's rules",
        "runs": jsonable(runs), "snapshots": table,
        "training_seeds": [r["seed"] for r in train_runs],
        "validation_seeds": [r["seed"] for r in val_runs],
        "validation": "other runs (velocity seeds)" if val_runs else "split by snapshot",
        "augmentation": {c: {"fraction": a[0], "sigma_A": a[1]}
                         for c, a in ramp.augment.items()},
        "retrain": f"insitu ramp train {ramp.name}"})
    export_onnx(model, descriptor, classes, out, threshold=threshold, training_summary=summary,
                validation_accuracy=report.get("val_accuracy"), atom_types=ramp.atom_types,
                mc_passes=DEFAULT_MC_PASSES, mc_seed=seed)
    if len(report["val_index"]):  # the MI threshold of MC dropout, on validation snapshots
        where = ", ".join(r["dir"] for r in val_runs) or ", ".join(str(d) for d in dirs)
        calibrate_mi_threshold(out, x[report["val_index"]], report["val_index"] + 1,
                               dataset=f"{where} (validation snapshots)",
                               labels=y[report["val_index"]])
    if card:
        write_ramp_card(ramp, out, report, runs, table, atoms_per_snapshot)
    return out, report


def log_from_snapshots(data_dir: str | Path, model: str | Path, out: str | Path,
                       timestep_ps: float = 0.001) -> Path:
    """Offline counterpart of an in-situ log: classify every snapshot of a ramp run with
    ``-var dump 1`` and write the rows in the in-situ log's layout through
    :class:`insitu.io.phase_log.PhaseLog` (T, PE and the set-point from
    ``snapshots/index.txt``), with the root attribute ``source`` saying so."""
    from insitu.model import Classifier

    clf = Classifier.load(model)
    classes = list(clf.classes)
    columns = classes + ["unknown"]
    rows = []
    for snap in read_snapshot_index(data_dir):
        frame = read_lammps_dump(snap.path)
        res = clf.classify(frame)
        labels = np.asarray(res.labels)
        thermo = {"time": snap.step * timestep_ps, "temperature": snap.temperature,
                  "potential_energy": snap.potential_energy,
                  "volume": float(abs(np.linalg.det(frame.cell)))}
        rows.append((snap, [int(np.sum(labels == c)) for c in columns], thermo,
                     float(np.mean(res.confidence))))
    log = PhaseLog(out, classes, stages=(), extra=("t_target", "stage"),
                   attrs={"model_path": str(model), "model_sha256": clf.sha256,
                          "descriptor": clf.descriptor.to_metadata(),
                          "source": f"offline classification of the snapshots in {data_dir}"},
                   units="metal", extra_units={"t_target": "K"})
    for snap, counts, thermo, confidence in rows:
        log.append(snap.step, thermo, np.asarray(counts), confidence, timings={},
                   extra={"t_target": snap.target, "stage": float(snap.stage)})
    return log.path
