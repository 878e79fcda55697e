"""GIIP in situ: sample LAEs during a run, or project atoms on a fitted GIIP model.

From a LAMMPS input (``fix python/invoke``; the same rank-local + ghost atoms as the
classification, :func:`insitu.coupling.rank_analysis.extract_points`)::

    comm_modify cutoff 6.0          # ghosts must cover the LAE cutoff (outer) + skin
    python giip_attach input 5 SELF gp every=500 sample=out/laes.h5 n_sample=200 &
           format pssss here "from insitu.coupling.giip_insitu import giip_attach"
    python giip_attach invoke
    fix gp all python/invoke 500 end_of_step giip_gp

Options (``key=value``): ``every=N`` (required, the fix interval); ``sample=PATH`` (HDF5
file: ``n_sample`` LAEs per call, drawn at random over all ranks, appended with their step,
atom id and centre type: the expensive distance work then runs offline on exactly the
states the run visited; ``insitu giip fit`` reads it); ``model=PATH`` (a GIIP model .npz:
every call projects ``max_atoms`` random local atoms per rank (0: all) by the Nystrom
extension and publishes ``v_<ID>_c<k>`` (fraction of the projected atoms in cluster k, for
the ``n_fractions`` largest clusters), ``v_<ID>_other``, ``v_<ID>_far`` (fraction farther
than the cluster diameter from every training LAE) and ``v_<ID>_m<k>`` (mean diffusion
coordinate k, k <= 3)); without a model, ``dim sigma inner outer species`` set the LAEs;
``center_types=1,2``; ``seed``; ``skin`` (the neighbor skin, if LAMMPS's log cannot say).
On the first call every rank checks that the ghost atoms cover the outer cutoff + skin and
otherwise stops the run with the ``comm_modify cutoff`` to add.

Cost: projecting one atom costs n_train orientation-minimised distances, which is why atoms
are sub-sampled (``max_atoms``, default 20 per rank; the fractions are then estimates with
a standard error of about sqrt(f (1 - f) / n_projected)). Measured with the Cu-Zr example's
model (300 training LAEs, O(3) search on a 20 deg grid; examples/giip/insitu_cuzr.py, 800
atoms on 2 ranks of a 2-core machine running one other job): 1.0 s wall per projected atom
(0.42 CPU-s from benchmarks/giip_distance.py's ~720 pairs per CPU-second) against 3.6 ms per
MD step, so 10 projected atoms per rank need ``every`` >= ~27,500 to stay under 10 % of
the run. The
sensible default is therefore to sample in situ (no distance work: one LAE extraction and
one HDF5 append per call, e.g. every 1000 steps) and project offline, and to project in
situ only every 10^4-10^5 steps; after the run, ``giip_report`` prints each rank's
measured cost per atom, MD time per step and the interval that keeps the projection under
10 %.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ..giip.lae import GIIPSettings, extract_laes
from ..giip.model import GIIPModel
from .bridge import stop_all_ranks
from .compat import mpi_communicator, set_string_variable
from .ghost_check import ghost_problem
from .mpi import InsituError, collective_check, sum_over_ranks
from .options import DEFAULT_SKIN
from .rank_analysis import extract_points

__all__ = ["GIIPInsitu", "giip_attach", "giip_report", "append_sampled_laes", "read_sampled_laes"]

_KEYS = {"every", "sample", "n_sample", "model", "max_atoms", "n_fractions", "dim", "sigma",
         "inner", "outer", "species", "center_types", "seed", "skin"}


def append_sampled_laes(path: str | Path, laes, step: int, atom_id, center_type,
                        settings: GIIPSettings) -> None:
    """Append LAEs (CSR: neighbours of all LAEs one after the other) to an HDF5 file."""
    import h5py

    with h5py.File(path, "a") as h5:
        g = h5.require_group("giip_samples")
        if "settings" not in g.attrs:
            import json

            g.attrs["settings"] = json.dumps(settings.to_dict())
        n = int(laes.counts.sum())
        rows = np.repeat(np.arange(len(laes)), laes.counts)
        slot = np.arange(n) - np.repeat(np.cumsum(laes.counts) - laes.counts, laes.counts)
        data = {"vectors": laes.positions[rows, slot], "weights": laes.weights[rows, slot],
                "channels": laes.channels[rows, slot], "counts": laes.counts,
                "step": np.full(len(laes), step, np.int64),
                "atom_id": np.asarray(atom_id, np.int64),
                "center_type": np.asarray(center_type, np.int64)}
        for name, arr in data.items():
            arr = np.asarray(arr)
            if name not in g:
                g.create_dataset(name, data=arr, maxshape=(None, *arr.shape[1:]),
                                 chunks=True)
            else:
                ds = g[name]
                ds.resize(ds.shape[0] + len(arr), axis=0)
                ds[-len(arr):] = arr


def read_sampled_laes(path: str | Path):
    """The LAEs sampled in situ, as an :class:`insitu.giip.pipeline.LAESample`."""
    import json

    import h5py

    from ..giip.lae import LAESet
    from ..giip.pipeline import LAESample

    with h5py.File(path, "r") as h5:
        g = h5["giip_samples"]
        settings = GIIPSettings.from_dict(json.loads(g.attrs["settings"]))
        d = {k: g[k][()] for k in g}
    counts = d["counts"]
    m = max(int(counts.max()), 1)
    rows = np.repeat(np.arange(len(counts)), counts)
    slot = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.zeros((len(counts), m, settings.dim))
    w = np.zeros((len(counts), m))
    ch = np.zeros((len(counts), m), np.int64)
    pos[rows, slot], w[rows, slot], ch[rows, slot] = d["vectors"], d["weights"], d["channels"]
    return LAESample(LAESet(pos, w, ch, counts.astype(np.int64)), np.zeros(len(counts), int),
                     d["step"], d["atom_id"], d["center_type"], np.full(len(counts), np.nan),
                     settings)


class GIIPInsitu:
    """One attached GIIP analysis (sampling and/or projection) on every rank."""

    def __init__(self, lmp, analysis_id: str, opts: dict):
        self.lmp, self.id = lmp, analysis_id
        self.comm = mpi_communicator(lmp)
        self.rank = self.comm.Get_rank()
        self.every = int(opts["every"])
        self.sample_path = opts.get("sample")
        self.n_sample = int(opts.get("n_sample", 100))
        self.max_atoms = int(opts.get("max_atoms", 20))
        self.seed = int(opts.get("seed", 12345))
        self.skin = float(opts["skin"]) if "skin" in opts else None
        self.ghosts_checked = False
        self.center_types = tuple(int(t) for t in opts.get("center_types", "").split(",") if t)
        self.model = GIIPModel.load(opts["model"]) if opts.get("model") else None
        if self.model is not None:
            self.settings = self.model.settings
            self.center_types = self.center_types or tuple(self.model.center_types)
            self.n_fractions = min(int(opts.get("n_fractions", 8)), self.model.n_clusters)
        else:
            self.settings = GIIPSettings(
                dim=int(opts.get("dim", 3)), sigma=float(opts.get("sigma", 1.0)),
                inner=float(opts.get("inner", 3.0)), outer=float(opts.get("outer", 4.0)),
                species=opts.get("species", "none"))
            self.n_fractions = 0
        self.timings: list[tuple[int, float, float]] = []   # (n projected, seconds, step)
        self.md_seconds: list[float] = []    # wall time between calls (the MD's), per step
        self.last_end: float | None = None

    def names(self) -> list[str]:
        if self.model is None:
            return []
        return ([f"c{k}" for k in range(self.n_fractions)] + ["other", "far"]
                + [f"m{k + 1}" for k in range(min(3, self.model.dmap.eigenvectors.shape[1]))])

    def define_variables(self) -> None:
        for name in self.names():
            var = f"{self.id}_{name}"
            self.lmp.command(f"variable {var}_s string 0")
            self.lmp.command(f"variable {var} equal v_{var}_s")

    def __call__(self, ptr) -> None:
        try:
            self.analyse()
        except InsituError as exc:
            stop_all_ranks(exc, self.rank)
        except BaseException:
            print(f"\nERROR insitu giip: rank {self.rank}:\n{traceback.format_exc()}",
                  file=sys.stderr, flush=True)
            self.comm.Abort(1)

    def analyse(self) -> None:
        start = time.perf_counter()
        if self.last_end is not None:
            self.md_seconds.append((start - self.last_end) / self.every)
        try:
            self.analyse_step()
        finally:
            self.last_end = time.perf_counter()

    def analyse_step(self) -> None:
        step = int(self.lmp.extract_global("ntimestep"))
        points = extract_points(self.lmp)
        if not self.ghosts_checked:
            self.check_ghosts(points)
        centres = np.arange(points.n_centers)
        if self.center_types:
            centres = centres[np.isin(points.types[:points.n_centers], self.center_types)]
        rng = np.random.default_rng([self.seed, step, self.rank])
        if self.sample_path:
            self.sample(points, centres, rng, step)
        if self.model is not None:
            self.project(points, centres, rng, step)

    def check_ghosts(self, points) -> None:
        """Collective, first call: every atom within the outer LAE cutoff (+ skin) of each
        local atom must be present, else all ranks stop with the comm_modify cutoff to add
        (a truncated LAE would give a silently wrong distance)."""
        self.ghosts_checked = True
        if self.comm.Get_size() > 1 or any(self.lmp.extract_box()[5]):
            units = self.lmp.extract_global("units") or "metal"
            collective_check(self.comm, ghost_problem(
                self.lmp, self.comm, points.n_centers, points.positions, self.settings.outer,
                self.skin, DEFAULT_SKIN.get(units, 2.0), "GIIP LAEs (outer cutoff)",
                "to giip_attach"))

    def sample(self, points, centres, rng, step: int) -> None:
        n_all = int(sum_over_ranks(self.comm, np.array([len(centres)]))[0])
        share = 0 if n_all == 0 else int(round(self.n_sample * len(centres) / n_all))
        pick = np.sort(rng.choice(centres, min(share, len(centres)), replace=False))
        laes = extract_laes(points, pick, self.settings)
        parts = self.comm.gather((laes, points.ids[pick], points.types[pick]), root=0)
        if self.rank == 0:
            from ..giip.lae import concat_laes

            parts = [p for p in parts if len(p[0])]
            if parts:
                append_sampled_laes(self.sample_path, concat_laes([p[0] for p in parts]),
                                    step, np.concatenate([p[1] for p in parts]),
                                    np.concatenate([p[2] for p in parts]), self.settings)

    def project(self, points, centres, rng, step: int) -> None:
        t0 = time.perf_counter()
        if self.max_atoms and len(centres) > self.max_atoms:
            centres = np.sort(rng.choice(centres, self.max_atoms, replace=False))
        laes = extract_laes(points, centres, self.settings)
        proj = self.model.project(laes)
        k = self.n_fractions
        counts = np.bincount(np.minimum(proj.cluster, k), minlength=k + 1)[:k + 1]
        far = np.sum(proj.nearest > self.model.diameter)
        n_m = len(self.names()) - k - 2
        sums = np.nansum(proj.coords[:, :n_m], axis=0) if len(proj.coords) else np.zeros(n_m)
        local = np.concatenate([counts, [far], sums, [len(centres)]]).astype(float)
        total = sum_over_ranks(self.comm, local)
        dt = time.perf_counter() - t0
        self.timings.append((len(centres), dt, step))
        n = max(total[-1], 1.0)
        values = list(total[:k + 2] / n) + list(total[k + 2:-1] / n)
        for name, value in zip(self.names(), values):
            set_string_variable(self.lmp, f"{self.id}_{name}_s", repr(float(value)))

    def suggested_every(self, overhead: float = 0.1) -> int:
        """Interval at which a call costs ``overhead`` of the MD time, from the measured
        call and step times (first call excluded: compilation)."""
        t = self.timings[1:] or self.timings
        if not t or not self.md_seconds:
            return 0
        call = sum(x[1] for x in t) / len(t)
        return int(np.ceil(call / (overhead * max(np.median(self.md_seconds), 1e-12))))

    def cost_per_atom(self) -> float:
        """Mean seconds per projected atom on this rank (first call excluded: compilation)."""
        t = self.timings[1:] or self.timings
        n = sum(x[0] for x in t)
        return sum(x[1] for x in t) / max(n, 1)


_ATTACHED: dict[str, GIIPInsitu] = {}


def giip_attach(ptr, analysis_id: str, *options: str) -> None:
    """Entry point for ``python giip_attach input N SELF ID key=value ... invoke``: defines
    the variables and the callback ``giip_<ID>`` for ``fix python/invoke``."""
    from lammps import lammps

    import __main__

    lmp = lammps(ptr=ptr)
    comm = mpi_communicator(lmp)
    message, opts = None, {}
    for word in options:
        key, sep, value = word.partition("=")
        if not sep or key not in _KEYS:
            message = f"giip_attach: unknown option {word!r} (known: {', '.join(sorted(_KEYS))})"
        opts[key] = value
    if message is None and "every" not in opts:
        message = "giip_attach: every=N is required (the interval of the fix)"
    if message is None and not (opts.get("sample") or opts.get("model")):
        message = "giip_attach: give sample=PATH (sampling) and/or model=PATH (projection)"
    if message is None and opts.get("model") and not Path(opts["model"]).is_file():
        message = f"giip_attach: model file {opts['model']!r} not found"
    collective_check(comm, message)
    analysis = GIIPInsitu(lmp, analysis_id, opts)
    analysis.define_variables()
    _ATTACHED[analysis_id] = analysis
    setattr(__main__, f"giip_{analysis_id}", analysis)
    if analysis.rank == 0:
        cols = " ".join(f"v_{analysis_id}_{n}" for n in analysis.names())
        print(f"insitu giip: '{analysis_id}' attached on {comm.Get_size()} rank(s), every "
              f"{analysis.every} steps; sample: {analysis.sample_path or 'no'}; model: "
              f"{opts.get('model', 'none')}; thermo columns: {cols or 'none'}", flush=True)


def giip_report(ptr, analysis_id: str) -> str:
    """Print (every rank) and return one line: calls, projected atoms and milliseconds per
    projected atom on this rank. From LAMMPS after the run: ``python giip_report input 2
    SELF ID format ps here "from insitu.coupling.giip_insitu import giip_report"`` then
    ``python giip_report invoke``."""
    a = _ATTACHED[analysis_id]
    md = np.median(a.md_seconds) * 1e3 if a.md_seconds else float("nan")
    line = (f"giip {analysis_id} rank {a.rank}: {len(a.timings)} calls, "
            f"{sum(t[0] for t in a.timings)} atoms projected, "
            f"{a.cost_per_atom() * 1e3:.3f} ms per atom ({len(a.model.train) if a.model else 0}"
            f" training LAEs); MD {md:.3f} ms per step; every >= {a.suggested_every()} keeps "
            "the projection under 10 % of the run")
    print(line, flush=True)
    return line
