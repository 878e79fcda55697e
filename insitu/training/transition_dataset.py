"""Near-transition dataset of the shipped crystal classifiers (``insitu train data
--protocol transition``): the heating and quench runs of
:mod:`insitu.training.transition_runs`, labelled by evidence
(:mod:`insitu.training.transition_labels`), turned into altered copies as in the Neighbors
Map paper, Sec. 3.1 (random fractions of atoms removed; training copies isotropically
rescaled by U(1-j, 1+j)), with LAMMPS ``compute cna/atom`` beside every validation copy.

Two files: ``out`` holds the training runs (``split`` 0) and their validation runs (other
velocity seeds, ``split`` 1); ``<out stem>_heldout.h5`` holds the held-out elements (never
in ``out``), all with ``split`` 1. Each snapshot contributes a random subset of the atoms
of each copy (``rows_train`` / ``rows_val``): atoms of one snapshot are strongly
correlated, more snapshots help more than more atoms of one.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from insitu.frame import Frame
from insitu.io.lammps_dump import iter_lammps_dump
from insitu.training.cna_reference import CNA_CODE, CNACalculator, cna_cutoff
from insitu.training.datagen import (
    CLASSES,
    MISSING_FRACTIONS,
    default_descriptors,
    write_features,
)
from insitu.training.transition_labels import label_heating, label_quench, windowed_msd
from insitu.training.transition_runs import (
    HELDOUT_ELEMENTS,
    T_MELT,
    TRAIN_ELEMENTS,
    TRANSITION_MATERIALS,
    read_ave_time,
    transition_runs,
)

__all__ = ["snapshot_copy", "ROLE_CODE", "KIND_CODE", "heldout_path", "wrapped",
           "snapshot_evidence",
           "generate_transition_dataset"]

ROLE_CODE = {"train": 0, "val": 1, "heldout": 2}
KIND_CODE = {"heat": 0, "quench": 1}


def heldout_path(out: str | Path) -> Path:
    """The held-out elements' file beside dataset ``out``."""
    out = Path(out)
    return out.with_name(out.stem + "_heldout.h5")


def wrapped(frame: Frame) -> Frame:
    """The frame with its atoms wrapped into the cell (dumps hold unwrapped positions)."""
    f = frame.positions @ np.linalg.inv(frame.cell)
    pos = (f - np.floor(f)) @ frame.cell
    return Frame(pos, frame.cell, frame.pbc, frame.types, frame.ids, frame.step)


def _cna_fractions(fr: Frame, structure: str, cna: CNACalculator) -> tuple:
    """(own, other, crystalline) fractions of a snapshot by CNA, each crystal class with the
    cutoff of its own shells (a bcc phase inside an hcp run needs the bcc cutoff)."""
    if structure not in CNA_CODE:
        return np.nan, np.nan, np.nan
    vol = fr.volume / len(fr)
    frac = {}
    for cls in CNA_CODE:
        frac[cls] = float(np.mean(cna(fr, cna_cutoff(cls, vol)) == CNA_CODE[cls]))
    own = frac[structure]
    other = max(v for c, v in frac.items() if c != structure)
    return own, other, min(1.0, sum(frac.values()))


def snapshot_evidence(run, cna: CNACalculator, latent_ev: float | None = None):
    """Frames of one run with their evidence and labels: returns (frames, table, info),
    ``table`` a list of per-snapshot dicts (step, temperature, pe, msd, CNA fractions,
    label, reason)."""
    mat = TRANSITION_MATERIALS[run.material]
    frames = list(iter_lammps_dump(run.dump))
    th = read_ave_time(run.thermo)
    row = {int(s): i for i, s in enumerate(th["step"])}
    msd = windowed_msd(frames, window=2)
    keep = [i for i, fr in enumerate(frames) if int(fr.step) in row]
    temp = np.array([th["temp"][row[int(frames[i].step)]] for i in keep])
    pe = np.array([th["pe"][row[int(frames[i].step)]] for i in keep])
    fr_cna = [_cna_fractions(wrapped(frames[i]), mat.structure, cna) for i in keep]
    own, other, crys = (np.array(c) for c in zip(*fr_cna))
    if run.kind == "heat":
        labels, info = label_heating(temp, pe, msd[keep], mat.structure, own, other,
                                     mat.t_melt)
    else:
        labels, info = label_quench(temp, pe, msd[keep], crys, mat.t_melt, latent_ev or 0.0)
    reasons = info.pop("reasons")
    table = [dict(step=int(frames[i].step), temperature=round(float(temp[j]), 1),
                  pe=round(float(pe[j]), 5), msd=round(float(msd[i]), 3),
                  cna_own=round(float(own[j]), 3), cna_crystalline=round(float(crys[j]), 3),
                  label=labels[j], reason=reasons[j]) for j, i in enumerate(keep)]
    if run.kind == "heat" and frames and int(frames[0].step) == 0:  # the perfect lattice
        table.insert(0, dict(step=0, temperature=0.0, pe=None, msd=None, cna_own=None,
                             cna_crystalline=None, label=mat.structure,
                             reason="0 K lattice"))
        keep = [0] + keep
    return [frames[i] for i in keep], table, info


def _copies(role: str, group: int) -> tuple:
    if role != "train":
        return MISSING_FRACTIONS
    nz = MISSING_FRACTIONS[1:]
    return (0.0, nz[group % len(nz)], nz[(group + 2) % len(nz)])


def snapshot_copy(frame: Frame, seed: int, run_seed: int, group: int,
                  missing_fraction: float) -> tuple[Frame, np.random.Generator]:
    """The copy of a (wrapped) snapshot with ``missing_fraction`` of its atoms removed, as
    the dataset holds it (the atoms drawn from a generator seeded by the dataset seed, the
    run's seed, the snapshot's group and the fraction), and the generator, which then draws
    the rows kept (and a training copy's scale)."""
    rng = np.random.default_rng([seed, run_seed, group, int(round(100 * missing_fraction))])
    keep = np.sort(rng.choice(len(frame), size=int(round(len(frame) * (1 - missing_fraction))),
                              replace=False))
    return frame.subset(keep), rng


def _columns_of_run(run, frames, table, descriptors, cna, group0, rows, scale_jitter, seed,
                    cols, feats):
    mat = TRANSITION_MATERIALS[run.material]
    group = group0
    for fr, snap in zip(frames, table):
        if snap["label"] is None:
            continue
        fr = wrapped(fr)
        vol_atom = fr.volume / len(fr)
        for x in _copies(run.role, group):
            sub, rng = snapshot_copy(fr, seed, run.seed, group, x)
            s = 1.0
            if scale_jitter > 0 and run.role == "train":
                s = float(rng.uniform(1 - scale_jitter, 1 + scale_jitter))
                sub = Frame(sub.positions * s, sub.cell * s, sub.pbc, sub.types, sub.ids)
            pick = np.sort(rng.choice(len(sub), size=min(rows, len(sub)), replace=False))
            for key, desc in descriptors.items():
                feats[key].append(np.asarray(desc.compute(sub))[pick].astype(np.float32))
            n = len(pick)
            if run.role != "train":
                codes = cna(sub, cna_cutoff(mat.structure, vol_atom * s**3))
                cols["cna"].append(codes[pick])
            else:
                cols["cna"].append(np.zeros(n, np.int64))
            cols["label"].append(np.full(n, CLASSES.index(snap["label"])))
            cols["group"].append(np.full(n, group))
            cols["split"].append(np.full(n, 0 if run.role == "train" else 1))
            cols["role"].append(np.full(n, ROLE_CODE[run.role]))
            cols["kind"].append(np.full(n, KIND_CODE[run.kind]))
            cols["material"].append(np.full(n, sorted(TRANSITION_MATERIALS).index(mat.name)))
            cols["temperature"].append(np.full(n, snap["temperature"]))
            cols["t_over_tm"].append(np.full(n, snap["temperature"] / mat.t_melt))
            cols["msd"].append(np.full(n, np.nan if snap["msd"] is None else snap["msd"]))
            cols["missing_fraction"].append(np.full(n, x))
            cols["scale"].append(np.full(n, s))
            cols["run_seed"].append(np.full(n, run.seed))
            cols["atom_id"].append(sub.ids[pick])
        group += 1
    return group


def _write(path: Path, descriptors, cols, feats, provenance) -> None:
    import h5py

    tmp = path.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as h5:
        for key, desc in descriptors.items():
            write_features(h5, key, desc, np.concatenate(feats[key]))
        for k, v in cols.items():
            h5.create_dataset(k, data=np.concatenate(v))
        h5.attrs["classes"] = json.dumps(CLASSES)
        h5.attrs["materials"] = json.dumps(sorted(TRANSITION_MATERIALS))
        h5.attrs["provenance"] = json.dumps(provenance)
    tmp.replace(path)


def generate_transition_dataset(out: str | Path = "data/transition.h5",
                                workdir: str | Path | None = None, descriptors=None,
                                train_elements=TRAIN_ELEMENTS,
                                heldout_elements=HELDOUT_ELEMENTS, rows_train: int = 96,
                                rows_val: int = 64, scale_jitter: float = 0.1, seed: int = 0,
                                workers: int = 2, progress: bool = True) -> tuple[Path, Path]:
    """Run (or reuse) the LAMMPS runs, label their snapshots and write ``out`` (training +
    validation runs) and :func:`heldout_path` (held-out elements). Columns as
    :func:`insitu.training.datagen.generate_crystal_dataset`, plus ``role`` (0 train,
    1 validation run, 2 held-out element), ``kind`` (0 heating, 1 quench) and ``msd``
    (A^2 over 2 ps); ``temperature`` is the measured one. Returns both paths."""
    from tqdm import tqdm

    t0 = time.time()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(workdir) if workdir else out.parent / "transition_lammps"
    descriptors = descriptors or default_descriptors()
    mats = [TRANSITION_MATERIALS[n] for n in (*train_elements, *heldout_elements)]
    roles = {n: ("train", "val") for n in train_elements}
    roles.update({n: ("heldout",) for n in heldout_elements})
    n_runs = sum(2 * len(r) for r in roles.values())
    with tqdm(total=n_runs, desc="LAMMPS runs", disable=not progress) as bar:
        runs = transition_runs(mats, workdir, roles=roles, seed=seed, workers=workers,
                               progress=bar)
    cna = CNACalculator()
    files = {"main": out, "heldout": heldout_path(out)}
    data = {f: ({k: [] for k in ("label", "group", "split", "role", "kind", "material",
                                 "temperature", "t_over_tm", "msd", "missing_fraction",
                                 "scale", "run_seed", "atom_id", "cna")},
                {k: [] for k in descriptors}) for f in files}
    evidence, group, latent = [], 0, {}
    for run in tqdm(sorted(runs, key=lambda r: r.kind), desc="labels + copies",
                    disable=not progress):  # heating before quench: the latent heat
        frames, table, info = snapshot_evidence(run, cna, latent.get((run.material,
                                                                      run.role)))
        if run.kind == "heat":
            latent[(run.material, run.role)] = info["latent_ev"]
        cols, feats = data["heldout" if run.role == "heldout" else "main"]
        group = _columns_of_run(run, frames, table, descriptors, cna, group,
                                rows_train if run.role == "train" else rows_val,
                                scale_jitter, seed, cols, feats)
        evidence.append(dict(**asdict(run), info=info, snapshots=table))
    cna.close()
    provenance = dict(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        generator="insitu.training.transition_dataset.generate_transition_dataset",
        protocol="transition", materials=[asdict(m) for m in mats],
        t_melt_sources={m.name: T_MELT[m.name][1] for m in mats},
        train_elements=list(train_elements), heldout_elements=list(heldout_elements),
        rows_train=rows_train, rows_val=rows_val, scale_jitter=scale_jitter, seed=seed,
        missing_fractions=list(MISSING_FRACTIONS), runs=evidence,
        wall_s=round(time.time() - t0, 1))
    for f, path in files.items():
        cols, feats = data[f]
        if cols["label"]:
            _write(path, descriptors, cols, feats, provenance)
    return out, files["heldout"]
