"""Near-transition MD runs for the crystal classifiers: each crystal heated up to its own
superheating limit (until it melts) and its liquid quenched until it crystallises or
vitrifies (NPT, ~1,000 atoms, LAMMPS potentials shipped with LAMMPS).

The snapshots of these runs are labelled by evidence from the run itself
(:mod:`insitu.training.transition_labels`), never by temperature alone; this module only
runs LAMMPS and reads back, per snapshot, the averaged temperature, potential energy per
atom and volume (``fix ave/time``) beside the dump (unwrapped positions, for the
mean-squared displacement).

Melting points: :data:`T_MELT` names the value used for every potential and its source
(the literature value for that potential).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insitu.training.datagen import Material, run_lammps_input

__all__ = ["T_MELT", "TRANSITION_MATERIALS", "TRAIN_ELEMENTS", "HELDOUT_ELEMENTS", "SEED_ORDER",
           "QUENCH_END", "element_lists", "TransitionRun", "plan_runs", "assert_disjoint_runs",
           "transition_runs", "read_ave_time", "read_ave_time_cols", "run_seed"]

# name -> (T_m of that potential in K, source). Only the reporting (T/T_m bins) and the
# temperature ranges of the runs use it: the labels come from the runs themselves.
T_MELT = {
    "Al": (926.0, "Mendelev, Kramer, Becker, Asta, Phil. Mag. 88, 1723 (2008): 926 K"),
    "Cu": (1327.0, "Mishin et al., Phys. Rev. B 63, 224106 (2001), EAM1: 1327 K"),
    "Au": (1090.0, "Foiles & Adams, Phys. Rev. B 40, 5909 (1989), u3 EAM: 1090 K"),
    "Ag": (1170.0, "Foiles & Adams, Phys. Rev. B 40, 5909 (1989), u3 EAM: 1170 K"),
    "Ni": (1740.0, "Foiles & Adams, Phys. Rev. B 40, 5909 (1989), u3 EAM: 1740 K"),
    "Fe": (1772.0, "Mendelev et al., Phil. Mag. 83, 3977 (2003), potential 2: 1772 K"),
    "Mg": (914.0, "Sun et al., Phys. Rev. B 73, 024116 (2006): 914 K"),
    "Zr": (2000.0, "value of the earlier shipped data for Zr_mm.eam.fs (Mendelev & Ackland, "
                   "Phil. Mag. Lett. 87, 349 (2007)); not verified here"),
    "Si": (1691.0, "Broughton & Li, Phys. Rev. B 35, 9120 (1987), Stillinger-Weber: 1691 K"),
    "SiT3": (2547.0, "Cook & Clancy, Phys. Rev. B 47, 7686 (1993), Tersoff T3: 2547 K"),
    "SiT2": (1750.0, "not known for this parameter set: its melting jump in a 30 ps heating "
                     "run (2367 K) / 1.35, the mean superheating ratio of the other "
                     "potentials in these runs; approximate"),
    "SiE": (1520.0, "Justo et al., Phys. Rev. B 58, 2539 (1998), EDIP: 1520 K"),
    "W": (4790.0, "estimated here (tungsten melts at 3695 K; this potential's own T_m not "
                  "found): the hysteresis rule of Luo et al. (2004) on its superheating "
                  "limit in a heating run (5596 K) and its crystallisation in a quench "
                  "(3814 K), both run with trial T_m values; approximate"),
    "Ti": (2010.0, "estimated here (this potential's own T_m not found; titanium melts at "
                   "1941 K): the hysteresis rule of Luo et al. (2004) on its superheating "
                   "limit in a heating run (2548 K) and the onset of crystallisation in a "
                   "quench (~1250 K: PE below the liquid's line, CNA order rising), both run "
                   "with a trial T_m of 1900 K; approximate"),
    "Ta": (3290.0, "tantalum's melting point (this potential's own not found): its crystal "
                   "jumped at 4154 K in a heating run (1.26 T_m, inside the 1.12-1.46 of the "
                   "other potentials' runs); approximate"),
    "Co": (1768.0, "cobalt's melting point (this potential's own not found): its crystal "
                   "jumped at 1993 K in a heating run (1.13 T_m, the low end of the other "
                   "potentials' 1.12-1.46), so the potential may melt lower; approximate"),
}


def _m(name, element, structure, lattice, a, reps, mass, pair_style, potential, baro="iso"):
    return Material(name, element, structure, lattice, a, reps, mass, pair_style, potential,
                    T_MELT[name][0], barostat=baro)


TRANSITION_MATERIALS = {
    "Al": _m("Al", "Al", "fcc", "fcc", 4.05, (5, 5, 5), 26.982, "eam/fs", "Al_mm.eam.fs"),
    "Cu": _m("Cu", "Cu", "fcc", "fcc", 3.615, (5, 5, 5), 63.546, "eam/alloy",
             "Cu_mishin1.eam.alloy"),
    "Au": _m("Au", "Au", "fcc", "fcc", 4.08, (5, 5, 5), 196.97, "eam", "Au_u3.eam"),
    "Ag": _m("Ag", "Ag", "fcc", "fcc", 4.09, (5, 5, 5), 107.87, "eam", "Ag_u3.eam"),
    "Ni": _m("Ni", "Ni", "fcc", "fcc", 3.52, (5, 5, 5), 58.71, "eam", "Ni_u3.eam"),
    "Fe": _m("Fe", "Fe", "bcc", "bcc", 2.855, (6, 6, 6), 55.845, "eam/fs", "Fe_mm.eam.fs"),
    "Mg": _m("Mg", "Mg", "hcp", "hcp", 3.21, (6, 4, 4), 24.305, "eam/fs", "Mg_mm.eam.fs",
             "aniso"),
    "Zr": _m("Zr", "Zr", "hcp", "hcp", 3.23, (6, 4, 4), 91.224, "eam/fs", "Zr_mm.eam.fs",
             "aniso"),
    "Si": _m("Si", "Si", "cubic_diamond", "diamond", 5.431, (4, 4, 4), 28.086, "sw", "Si.sw"),
    # Tersoff's T3 Si (Phys. Rev. B 38, 9902 (1988)): the Si(D) entry of SiCGe.tersoff
    "SiT3": _m("SiT3", "Si(D)", "cubic_diamond", "diamond", 5.432, (4, 4, 4), 28.086,
               "tersoff", "SiCGe.tersoff"),
    "SiE": _m("SiE", "Si", "cubic_diamond", "diamond", 5.430, (4, 4, 4), 28.086, "edip",
              "Si.edip"),
    # Tersoff's T2 Si (Phys. Rev. B 37, 6991 (1988)), the Si.tersoff LAMMPS ships
    "SiT2": _m("SiT2", "Si", "cubic_diamond", "diamond", 5.432, (4, 4, 4), 28.086, "tersoff",
               "Si.tersoff"),
    "W": _m("W", "W", "bcc", "bcc", 3.165, (6, 6, 6), 183.84, "eam/alloy", "W_zhou.eam.alloy"),
    # Hennig et al., Phys. Rev. B 78, 054121 (2008)
    "Ti": _m("Ti", "Ti", "hcp", "hcp", 2.95, (6, 4, 4), 47.867, "meam/spline", "Ti.meam.spline",
             "aniso"),
    # the Ta of Zhou, Johnson & Wadley's Cu-Ta file (Phys. Rev. B 69, 144113 (2004))
    "Ta": _m("Ta", "Ta", "bcc", "bcc", 3.303, (6, 6, 6), 180.95, "eam/alloy", "CuTa.eam.alloy"),
    # the Co of the Co-Al file (Co-Co: Pasianot & Savino, Phys. Rev. B 45, 12704 (1992))
    "Co": _m("Co", "Co", "hcp", "hcp", 2.507, (6, 4, 4), 58.933, "eam/alloy", "CoAl.eam.alloy",
             "aniso"),
}

QUENCH_END = {"Ti": 0.65}
"""Where a material's quench stops, as a fraction of T_m, if not at 0.55 T_m: Ti's liquid
starts to crystallise near 0.62 T_m, ahead of what the quench labels detect (the PE falls
below the liquid's line too slowly for the sustained-drop rule), so its quench ends before."""
SEED_ORDER = ("Ag", "Al", "Au", "Cu", "Fe", "Mg", "Ni", "Si", "SiT3", "Zr", "SiE", "SiT2", "W",
              "Ti", "Ta", "Co")
"""A material's place in the velocity seeds (:func:`run_seed`): new materials go at the end,
so the seeds, and with them every existing run and dataset, stay what they were."""
TRAIN_ELEMENTS = ("Al", "Cu", "Au", "Fe", "Mg", "Si")
HELDOUT_ELEMENTS = ("Ni", "Ag", "Zr")
"""Elements (potentials) in neither the training runs nor their validation runs."""


def element_lists(train: str | None = None, heldout: str | None = None
                  ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The training and held-out elements from comma lists (None: the defaults
    :data:`TRAIN_ELEMENTS`, :data:`HELDOUT_ELEMENTS`); unknown names, an empty training list
    and an element in both lists are refused."""
    def names(text, default):
        if text is None:
            return tuple(default)
        out = tuple(n.strip() for n in text.split(",") if n.strip())
        bad = [n for n in out if n not in TRANSITION_MATERIALS]
        if bad:
            raise ValueError(f"unknown element(s) {bad}: choose from "
                             f"{', '.join(TRANSITION_MATERIALS)}")
        return out

    train_names, heldout_names = names(train, TRAIN_ELEMENTS), names(heldout, HELDOUT_ELEMENTS)
    if not train_names:
        raise ValueError("no training elements")
    both = sorted(set(train_names) & set(heldout_names))
    if both:
        raise ValueError(f"{both} both trained on and held out: an element is one or the other")
    return train_names, heldout_names


HEAT = """velocity all create {t_init} {seed} mom yes rot yes dist gaussian
fix ramp all npt temp {t0} {t1} 0.1 {baro} 0 0 1.0
"""
QUENCH = """velocity all create {t_hot} {seed} mom yes rot yes dist gaussian
fix melt all npt temp {t_hot} {t_hot} 0.1 iso 0 0 1.0
run {melt_steps}
unfix melt
reset_timestep 0
fix ramp all npt temp {t0} {t1} 0.1 iso 0 0 1.0
"""
RECORD = """variable pea equal pe/atoms
variable vola equal vol/atoms
fix av all ave/time 10 10 {every} c_thermo_temp v_pea v_vola file {name}.thermo
dump snap all custom {every} {name}.dump id type xu yu zu
dump_modify snap sort id
run {steps}
"""


def run_seed(name: str, kind: str, role: str, seed: int = 0) -> int:
    """The velocity seed of one run: distinct for every (material, kind, role) and never
    shared between a training run and a validation / held-out run."""
    base = {"train": 11000, "val": 53000, "heldout": 97000}[role]
    idx = SEED_ORDER.index(name)
    return base + 100 * idx + (0 if kind == "heat" else 50) + seed


@dataclass
class TransitionRun:
    """One LAMMPS run and what it wrote."""
    name: str
    material: str
    kind: str       # "heat" or "quench"
    role: str       # "train", "val" or "heldout"
    seed: int
    t0: float
    t1: float
    dump: str
    thermo: str
    ramp_ps: float


def plan_runs(materials, workdir: Path, roles=("train", "val"), heat_ps: float = 30.0,
              quench_ps: float = 30.0, snapshot_ps: float = 1.0,
              seed: int = 0) -> list[tuple[TransitionRun, str]]:
    """The runs (and their LAMMPS inputs) of :func:`transition_runs`, without running them:
    heating 100 K -> 1.5 T_m over ``heat_ps``; quench: melt at 2 T_m for 4 ps, then
    1.4 T_m -> 0.55 T_m (or :data:`QUENCH_END`) over ``quench_ps``; for every material and
    role (``roles``: names, or a per-material dict of names)."""
    workdir = Path(workdir)
    out = []
    every = int(round(snapshot_ps * 1000))
    for mat in materials:
        for role in (roles[mat.name] if isinstance(roles, dict) else roles):
            for kind in ("heat", "quench"):
                s = run_seed(mat.name, kind, role, seed)
                name = f"{mat.name}_{kind}_{role}_s{s}"
                tm = mat.t_melt
                if kind == "heat":
                    t0, t1, ps = 100.0, round(1.5 * tm), heat_ps
                    body = HEAT.format(t_init=2 * t0, seed=s, t0=t0, t1=t1, baro=mat.barostat)
                else:
                    t0, t1 = round(1.4 * tm), round(QUENCH_END.get(mat.name, 0.55) * tm)
                    ps = quench_ps
                    body = QUENCH.format(t_hot=round(2 * tm), seed=s, melt_steps=4000, t0=t0,
                                         t1=t1)
                script = mat.md_head() + body + RECORD.format(
                    every=every, name=name, steps=int(round(ps * 1000)))
                run = TransitionRun(name, mat.name, kind, role, s, t0, t1,
                                    str(workdir / f"{name}.dump"),
                                    str(workdir / f"{name}.thermo"), ps)
                out.append((run, script))
    return out


def assert_disjoint_runs(runs) -> None:
    """Raise ValueError if a validation or held-out run shares a velocity seed, a name or a
    dump with a training run, or a held-out element has a training or validation run
    (``runs``: TransitionRun objects or their dicts)."""
    runs = [r if isinstance(r, dict) else r.__dict__ for r in runs]
    train = [r for r in runs if r["role"] == "train"]
    other = [r for r in runs if r["role"] != "train"]
    for key in ("seed", "name", "dump"):
        shared = {r[key] for r in train} & {r[key] for r in other}
        if shared:
            raise ValueError(f"validation/held-out runs share {key} {sorted(shared)} with "
                             "training runs")
    held = {r["material"] for r in runs if r["role"] == "heldout"}
    mixed = held & {r["material"] for r in runs if r["role"] != "heldout"}
    if mixed:
        raise ValueError(f"held-out elements {sorted(mixed)} also have training/validation "
                         "runs")


def transition_runs(materials, workdir: Path, roles=("train", "val"), heat_ps: float = 30.0,
                    quench_ps: float = 30.0, snapshot_ps: float = 1.0, seed: int = 0,
                    workers: int = 2, progress=None) -> list[TransitionRun]:
    """Run the LAMMPS runs of :func:`plan_runs`, ``workers`` serial runs at a time; runs
    that finished (``<name>.done``) or that another process is running
    (``<name>.running``) are not started."""
    from concurrent.futures import ThreadPoolExecutor

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)  # the run markers go there before LAMMPS
    plan = plan_runs(materials, workdir, roles, heat_ps, quench_ps, snapshot_ps, seed)
    assert_disjoint_runs([run for run, _ in plan])

    def one(job):
        run, script = job
        done, running = workdir / f"{run.name}.done", workdir / f"{run.name}.running"
        if not done.exists() and not running.exists():  # (another process may run it)
            running.touch()
            try:
                run_lammps_input(script, workdir, run.name)
                done.touch()
            finally:
                running.unlink()
        if progress is not None:
            progress.update(1)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, plan))
    return [run for run, _ in plan]


def read_ave_time(path: str | Path) -> dict:
    """``fix ave/time`` output as arrays ``step``, ``temp`` (K), ``pe`` (eV/atom) and
    ``vol`` (A^3/atom)."""
    a = read_ave_time_cols(path).reshape(-1, 4)
    return dict(step=a[:, 0].astype(np.int64), temp=a[:, 1], pe=a[:, 2], vol=a[:, 3])


def read_ave_time_cols(path: str | Path) -> np.ndarray:
    """All numeric rows of a ``fix ave/time`` file as a 2-D array."""
    return np.array([line.split() for line in Path(path).read_text().splitlines()
                     if line.strip() and not line.startswith("#")], dtype=np.float64)
