"""Training data for the shipped crystal classifiers (Neighbors Map paper, Sec. 3.1).

For each material (bcc Fe, fcc Al, hcp Zr, cubic-diamond Si, with the potentials the paper
cites) LAMMPS runs an NPT ramp from 100 K to 2/3 T_m over 10 ps and dumps a snapshot every
1 ps; a second, independent ramp (other velocity seed) is the validation run, so that the
train/validation split is by run (never by atom). Each snapshot gets altered copies with a
random fraction x of its atoms removed, x in {0, 0.1, ..., 0.5}. Liquid snapshots of each
material (melted at 2 T_m, then cooled from 1.5 T_m to 1.05 T_m) make the ``liquid`` class.
For every copy, LAMMPS ``compute cna/atom`` gives the reference label beside ours.

Everything lands in one HDF5 file; see :func:`generate_crystal_dataset`.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from insitu.descriptors.fingerprint import descriptor_fingerprint
from insitu.frame import Frame
from insitu.io.lammps_dump import iter_lammps_dump
from insitu.launch import lammps_env, lmp_binary
from insitu.training.cna_reference import CNACalculator, cna_cutoff

POTENTIAL_DIR = Path(os.environ.get("LAMMPS_POTENTIALS", "/usr/share/lammps/potentials"))

CLASSES = ["fcc", "bcc", "hcp", "cubic_diamond", "liquid"]


@dataclass
class Material:
    name: str
    element: str
    structure: str          # class name of the crystal
    lattice: str            # LAMMPS lattice style
    a: float                # lattice constant, Angstrom
    reps: tuple             # replication of the LAMMPS unit cell
    mass: float
    pair_style: str
    potential: str
    t_melt: float           # melting point of the potential, K (literature / estimate)
    barostat: str = "iso"

    def md_head(self) -> str:
        """The start of an input script for this material (box, potential, neighbours)."""
        return MD_HEAD.format(lattice=self.lattice, a=self.a, r0=self.reps[0],
                              r1=self.reps[1], r2=self.reps[2], mass=self.mass,
                              pair=self.pair_lines())

    def pair_lines(self) -> str:
        pot = POTENTIAL_DIR / self.potential
        # a funcfl file (pair_style eam) names no elements
        element = "" if self.pair_style == "eam" else f" {self.element}"
        return f"pair_style {self.pair_style}\npair_coeff * * {pot}{element}\n"


MATERIALS = {
    "Fe": Material("Fe", "Fe", "bcc", "bcc", 2.855, (5, 5, 5), 55.845, "eam/fs",
                   "Fe_mm.eam.fs", 1772.0),
    "Al": Material("Al", "Al", "fcc", "fcc", 4.05, (4, 4, 4), 26.982, "eam/fs",
                   "Al_mm.eam.fs", 926.0),
    "Zr": Material("Zr", "Zr", "hcp", "hcp", 3.23, (5, 3, 4), 91.224, "eam/fs",
                   "Zr_mm.eam.fs", 2000.0, barostat="aniso"),
    "Si": Material("Si", "Si", "cubic_diamond", "diamond", 5.431, (3, 3, 3), 28.086, "sw",
                   "Si.sw", 1690.0),
}

MISSING_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)

MD_HEAD = """units metal
atom_style atomic
boundary p p p
lattice {lattice} {a}
region box block 0 {r0} 0 {r1} 0 {r2}
create_box 1 box
create_atoms 1 box
mass 1 {mass}
{pair}neighbor 1.0 bin
neigh_modify delay 0 every 1 check yes
timestep 0.001
thermo 500
thermo_style custom step temp pe vol press
"""

CRYSTAL_RAMP = """velocity all create 200 {seed} mom yes rot yes dist gaussian
fix ramp all npt temp 100 {t_end} 0.1 {baro} 0 0 1.0
dump snap all custom {every} {dump} id type x y z
dump_modify snap sort id
run {steps}
"""

LIQUID = """velocity all create {t_hot} {seed} mom yes rot yes dist gaussian
fix melt all npt temp {t_hot} {t_hot} 0.1 iso 0 0 1.0
run {melt_steps}
unfix melt
fix cool all npt temp {t_start} {t_end} 0.1 iso 0 0 1.0
reset_timestep 0
dump snap all custom {every} {dump} id type x y z
dump_modify snap sort id
run {steps}
"""


def run_lammps_input(script: str, workdir: Path, name: str) -> None:
    """Run one serial LAMMPS input with the ``lmp`` binary (log next to it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    inp = workdir / f"{name}.lmp"
    inp.write_text(script)
    env = lammps_env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([lmp_binary(), "-in", inp.name, "-log", f"{name}.log", "-screen",
                           "none"], cwd=workdir, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        log = workdir / (name + ".log")
        raise RuntimeError(f"LAMMPS failed on {inp} (rc={proc.returncode}); see {log}\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def md_runs(materials, workdir: Path, n_train_runs: int = 1, n_val_runs: int = 1,
            ramp_ps: float = 10.0, snapshot_ps: float = 1.0, liquid_snapshot_ps: float = 2.0,
            seed: int = 0, progress=None, include_liquid: bool = True, melt_ps: float = 6.0):
    """Run the LAMMPS ramps; returns a list of run records (dump path + provenance)."""
    runs = []
    steps = int(round(ramp_ps * 1000))
    for mat in materials:
        for k in range(n_train_runs + n_val_runs):
            split = "train" if k < n_train_runs else "val"
            for phase in ("crystal", "liquid") if include_liquid else ("crystal",):
                rseed = 1000 + 97 * k + 13 * len(runs) + seed
                name = f"{mat.name}_{phase}_run{k}"
                dump = workdir / f"{name}.dump"
                fmt = dict(seed=rseed, dump=dump.name, steps=steps)
                if phase == "crystal":
                    t_end = round(2.0 / 3.0 * mat.t_melt, 1)
                    every = int(round(snapshot_ps * 1000))
                    script = mat.md_head() + CRYSTAL_RAMP.format(
                        t_end=t_end, baro=mat.barostat, every=every, **fmt)
                    temps = (100.0, t_end)
                else:
                    every = int(round(liquid_snapshot_ps * 1000))
                    t_hot = round(2.0 * mat.t_melt)
                    temps = (round(1.5 * mat.t_melt, 1), round(1.05 * mat.t_melt, 1))
                    script = mat.md_head() + LIQUID.format(
                        t_hot=t_hot, melt_steps=int(round(melt_ps * 1000)), t_start=temps[0],
                        t_end=temps[1], every=every, **fmt)
                if not dump.exists():
                    run_lammps_input(script, workdir, name)
                runs.append(dict(name=name, material=mat.name, phase=phase, split=split,
                                 dump=str(dump), seed=rseed, t_start=temps[0], t_end=temps[1],
                                 steps=steps, cold_snapshot=phase == "crystal"))
                if progress is not None:
                    progress.update(1)
    return runs


NM_PARAMS = dict(cutoff=6.5, n_grid=32, gamma=2.0, beta=3.0)
# q-bar_l and w-bar_l (Lechner & Dellago 2008): w-bar_l separates hcp and the liquid with
# half the atoms missing (crystal-boo, 50 % missing, T <= 0.9 T_m: 84 % with q-bar_l alone);
# the spread of the nearest-neighbour distance over the neighbourhood tells points without
# an excluded volume (uniformly random: ~0.3) from every condensed phase (< 0.1 thermal,
# with or without missing atoms), which bond directions alone cannot
BOO_PARAMS = dict(ls=(3, 4, 6, 8, 10, 12), n_neighbors=12, averaged=True, wl=True,
                  nearest_spread=True)


def default_descriptors(keys=("nm", "boo")) -> dict:
    """The descriptors of the shipped crystal models (``nm``: Neighbors Map, ``boo``: BOO)."""
    out = {}
    if "nm" in keys:
        from insitu.descriptors import NeighborsMap
        out["nm"] = NeighborsMap(**NM_PARAMS)
    if "boo" in keys:
        from insitu.descriptors import Steinhardt
        out["boo"] = Steinhardt(**BOO_PARAMS)
    return out


def _snapshots(runs):
    frames = []
    for run in runs:
        for fr in iter_lammps_dump(run["dump"]):
            if fr.step == 0:  # the perfect lattice of a crystal run: a 0 K snapshot
                if run.get("cold_snapshot"):  # (datasets made before it have none)
                    frames.append((run, fr, 0.0))
                continue
            frac_t = fr.step / run["steps"]
            temp = run["t_start"] + (run["t_end"] - run["t_start"]) * frac_t
            frames.append((run, fr, temp))
    return frames


def iter_copies(runs, materials, missing_fractions=MISSING_FRACTIONS, scale_jitter=0.0,
                seed=0):
    """Yield (group, run, material, temperature, x, copy_seed, scale, volume_per_atom, frame)
    for every altered copy; deterministic for a given seed (so descriptors can be added to
    an existing dataset later with :func:`add_descriptor`)."""
    mat_by_name = {m.name: m for m in materials}
    rng_master = np.random.default_rng(seed)
    for group, (run, fr, temp) in enumerate(_snapshots(runs)):
        mat = mat_by_name[run["material"]]
        vol_atom = fr.volume / len(fr)
        for x in missing_fractions:
            cseed = int(rng_master.integers(2**31 - 1))
            rng = np.random.default_rng(cseed)
            n_keep = int(round(len(fr) * (1.0 - x)))
            keep = np.sort(rng.choice(len(fr), size=n_keep, replace=False))
            sub = fr.subset(keep)
            s = 1.0
            if scale_jitter > 0 and run["split"] == "train":
                s = float(rng.uniform(1 - scale_jitter, 1 + scale_jitter))
                sub = Frame(sub.positions * s, sub.cell * s, sub.pbc, sub.types, sub.ids)
            yield group, run, mat, temp, x, cseed, s, vol_atom, sub


def _copies_to_columns(runs, materials, descriptors, missing_fractions, scale_jitter, seed,
                       progress, with_cna=True):
    from tqdm import tqdm

    cna = CNACalculator() if with_cna else None
    cols = {k: [] for k in ("label", "group", "split", "material", "temperature", "t_over_tm",
                            "missing_fraction", "scale", "copy_seed", "run_seed", "atom_id",
                            "cna")}
    feats = {k: [] for k in descriptors}
    mat_index = {m.name: i for i, m in enumerate(materials)}
    n_copies = len(_snapshots(runs)) * len(missing_fractions)
    with tqdm(total=n_copies, desc="copies: CNA + descriptors", disable=not progress) as bar:
        for group, run, mat, temp, x, cseed, s, vol_atom, sub in iter_copies(
                runs, materials, missing_fractions, scale_jitter, seed):
            cls = "liquid" if run["phase"] == "liquid" else mat.structure
            for key, desc in descriptors.items():
                feats[key].append(np.asarray(desc.compute(sub)))
            n = len(sub)
            if cna is not None:
                cols["cna"].append(cna(sub, cna_cutoff(mat.structure, vol_atom * s**3)))
            cols["label"].append(np.full(n, CLASSES.index(cls)))
            cols["group"].append(np.full(n, group))
            cols["split"].append(np.full(n, 0 if run["split"] == "train" else 1))
            cols["material"].append(np.full(n, mat_index[mat.name]))
            cols["temperature"].append(np.full(n, temp))
            cols["t_over_tm"].append(np.full(n, temp / mat.t_melt))
            cols["missing_fraction"].append(np.full(n, x))
            cols["scale"].append(np.full(n, s))
            cols["copy_seed"].append(np.full(n, cseed))
            cols["run_seed"].append(np.full(n, run["seed"]))
            cols["atom_id"].append(sub.ids)
            bar.update(1)
    if cna is not None:
        cna.close()
    cols = {k: v for k, v in cols.items() if v}
    return cols, feats


def write_features(h5, key: str, descriptor, arr: np.ndarray) -> None:
    """Store features ``arr`` as dataset ``key`` of the open HDF5 file ``h5``, with the
    descriptor's metadata and its code fingerprint
    (:mod:`insitu.descriptors.fingerprint`: other descriptor code refuses them)."""
    ds = h5.create_dataset(key, data=arr, chunks=(min(1024, len(arr)),) + arr.shape[1:],
                           compression="lzf")
    ds.attrs["descriptor"] = json.dumps(descriptor.to_metadata())
    ds.attrs["fingerprint"] = json.dumps(descriptor_fingerprint(descriptor))


def add_descriptor(path, key: str, descriptor, progress: bool = True) -> None:
    """Compute another descriptor for an existing dataset (same copies, same order) and
    store it as dataset ``key`` (replacing one of that name)."""
    import h5py

    with h5py.File(path, "r") as h5:
        prov = json.loads(h5.attrs["provenance"])
        atom_id = h5["atom_id"][...]
    materials = [Material(**{**m, "reps": tuple(m["reps"])}) for m in prov["materials"]]
    _, feats = _copies_to_columns(prov["runs"], materials, {key: descriptor},
                                  prov["missing_fractions"], prov["scale_jitter"], prov["seed"],
                                  progress, with_cna=False)
    arr = np.concatenate(feats[key]).astype(np.float32)
    if len(arr) != len(atom_id):
        raise RuntimeError(f"{path}: recomputed {len(arr)} rows, dataset has {len(atom_id)}")
    with h5py.File(path, "a") as h5:
        if key in h5:
            del h5[key]
        write_features(h5, key, descriptor, arr)


def generate_crystal_dataset(out: str | Path = "data/crystal.h5", workdir: str | Path | None = None,
                             materials=None, descriptors=None, n_train_runs: int = 1,
                             n_val_runs: int = 1, ramp_ps: float = 10.0,
                             missing_fractions=MISSING_FRACTIONS, scale_jitter: float = 0.0,
                             seed: int = 0, progress: bool = True, include_liquid: bool = True,
                             melt_ps: float = 6.0) -> Path:
    """Generate the crystal/liquid dataset and write it to ``out`` (HDF5).

    Datasets (one row per atom of each altered copy): one per descriptor key (``nm``, ``boo``;
    attribute ``descriptor`` = JSON metadata), ``label`` (index into attribute ``classes``),
    ``group`` (snapshot id, shared by all altered copies of a snapshot), ``split`` (0 train,
    1 validation; by run), ``material``, ``temperature`` (ramp target at the snapshot, K),
    ``t_over_tm``, ``missing_fraction``, ``scale``, ``copy_seed``, ``run_seed``,
    ``atom_id``, ``cna`` (LAMMPS cna/atom code). File attributes: provenance JSON.
    ``scale_jitter`` > 0 rescales each training copy isotropically by U(1-j, 1+j)
    (augmentation for other lattice constants); validation copies are never rescaled.
    """
    import h5py
    from tqdm import tqdm

    t0 = time.time()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(workdir) if workdir else out.parent / (out.stem + "_lammps")
    materials = [MATERIALS[m] if isinstance(m, str) else m
                 for m in (materials or list(MATERIALS))]
    descriptors = descriptors or default_descriptors()

    n_md = len(materials) * (n_train_runs + n_val_runs) * (2 if include_liquid else 1)
    with tqdm(total=n_md, desc="LAMMPS runs", disable=not progress) as bar:
        runs = md_runs(materials, workdir, n_train_runs, n_val_runs, ramp_ps, seed=seed,
                       progress=bar, include_liquid=include_liquid, melt_ps=melt_ps)

    cols, feats = _copies_to_columns(runs, materials, descriptors, missing_fractions,
                                     scale_jitter, seed, progress, with_cna=True)

    provenance = dict(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        generator="insitu.training.datagen.generate_crystal_dataset",
        materials=[asdict(m) for m in materials], runs=runs,
        missing_fractions=list(missing_fractions), ramp_ps=ramp_ps, seed=seed, melt_ps=melt_ps,
        scale_jitter=scale_jitter, protocol="NPT ramp 100 K -> 2/3 Tm over ramp_ps, snapshot "
        "every 1 ps (crystal); melt at 2 Tm 6 ps then NPT 1.5 Tm -> 1.05 Tm, snapshot every "
        "2 ps (liquid); split by run", wall_s=None)
    tmp = out.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as h5:
        for key, desc in descriptors.items():
            write_features(h5, key, desc, np.concatenate(feats[key]).astype(np.float32))
        for k, v in cols.items():
            h5.create_dataset(k, data=np.concatenate(v))
        h5.attrs["classes"] = json.dumps(CLASSES)
        h5.attrs["materials"] = json.dumps([m.name for m in materials])
        h5.attrs["atom_types"] = json.dumps({"1": "material-dependent (one species per run)"})
        provenance["wall_s"] = round(time.time() - t0, 1)
        h5.attrs["provenance"] = json.dumps(provenance)
    tmp.replace(out)
    return out
