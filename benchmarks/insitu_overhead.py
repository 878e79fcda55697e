"""Cost of one in-situ analysis call, in MD steps of the same run.

EAM Ni, 32,000 atoms (20x20x20 fcc cells) at 900 K, 2 MPI ranks. One LAMMPS job per
model: ``run`` without the analysis (time per MD step, same ghost cutoff), then ``run``
with the analysis every 20 steps. The per-call cost is the median over calls (the first,
which pays for JIT compilation and session start, excluded) of the slowest rank's time,
with the stage breakdown from the HDF5 log. A model with MC dropout is attached twice in
the same run, with its default passes T and with ``mc_passes=1`` (dropout off), so the
cost of the T passes is a ratio measured under the same conditions. Results go to
benchmarks/results.json under "insitu_overhead".

Usage: .venv/bin/python benchmarks/insitu_overhead.py [--cells 20] [--nprocs 2]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from insitu.io.phase_log import read_log
from insitu.launch import lammps_env, mpirun_command
from insitu.model import Classifier
from insitu.resources import model_path

RESULTS = Path(__file__).resolve().parent / "results.json"

SCRIPT = """
units metal
lattice fcc 3.52
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 1 box
create_atoms 1 box
mass 1 58.69
pair_style eam
pair_coeff 1 1 Ni_u3.eam
neighbor 2.0 bin
neigh_modify delay 0 every 1 check yes
comm_modify cutoff {comm}
velocity all create 1800 4928459 loop geom
fix md all nvt temp 900 900 0.1
thermo 50
run 20
run {md_steps}
python insitu_attach input 5 SELF ov {model} every={every} log=overhead.h5 format pssss &
    here "from insitu.coupling import insitu_attach"
python insitu_attach invoke
fix ov all python/invoke {every} end_of_step insitu_ov
{single_pass}run {an_steps}
"""


SINGLE_PASS = """python insitu_attach input 6 SELF t1 {model} every={every} log=t1.h5 mc_passes=1 &
    format psssss here "from insitu.coupling import insitu_attach"
python insitu_attach invoke
fix t1 all python/invoke {every} end_of_step insitu_t1
"""


def measure(model: Path, cells: int, nprocs: int, every: int = 20, calls: int = 6) -> dict:
    clf = Classifier.load(model)
    single = SINGLE_PASS.format(model=model, every=every) if clf.mc_passes > 1 else ""
    comm = float(np.ceil(clf.descriptor.required_cutoff + 2.0 + 0.1))
    md_steps, an_steps = 100, every * calls
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "in.lmp").write_text(SCRIPT.format(cells=cells, comm=comm, model=model,
                                                     every=every, md_steps=md_steps,
                                                     an_steps=an_steps, single_pass=single))
        env = lammps_env()
        env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
        proc = subprocess.run(mpirun_command(nprocs, "in.lmp", extra=["-log", "log.lammps"]),
                              cwd=tmp, env=env, capture_output=True, text=True, timeout=1800)
        if proc.returncode:
            raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
        loops = [float(t) for t in re.findall(r"Loop time of ([\d.eE+-]+) on", proc.stdout)]
        log = read_log(Path(tmp, "overhead.h5"))
        one_pass = read_log(Path(tmp, "t1.h5")) if single else None
    md_step_s = loops[1] / md_steps
    total = log.timings["total"][1:]
    per_call = float(np.median(total))
    stages = {s: float(np.median(log.timings[s][1:]))
              for s in ("extract", "descriptor", "inference", "reduce")}
    natoms = int(sum(log.counts[c][-1] for c in clf.classes + ["unknown"]))
    return {
        "model": model.name,
        "descriptor": clf.descriptor.kind,
        "atoms": natoms,
        "ranks": nprocs,
        "comm_cutoff_angstrom": comm,
        "md_step_s": md_step_s,
        "analysis_call_s": per_call,
        "call_cost_in_md_steps": per_call / md_step_s,
        "first_call_s": float(log.timings["total"][0]),
        "stages_s": stages,
        "atoms_per_s_per_rank": natoms / nprocs / per_call,
        "mc_passes": clf.mc_passes,
        "one_pass_call_s": (float(np.median(one_pass.timings["total"][1:]))
                            if one_pass is not None else per_call),
    } | ({"mc_overhead_vs_one_pass": per_call / float(np.median(one_pass.timings["total"][1:]))
          - 1.0} if one_pass is not None else {})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=["crystal-nm.onnx", "crystal-boo.onnx"])
    args = ap.parse_args()
    results = {}
    for name in args.models:
        path = model_path(name)
        if not path.exists():
            print(f"skip {name}: not found")
            continue
        r = measure(path, args.cells, args.nprocs)
        results[name] = r
        print(f"{name}: {r['atoms']} atoms on {r['ranks']} ranks: one call "
              f"{r['analysis_call_s']:.3f} s = {r['call_cost_in_md_steps']:.1f} MD steps "
              f"({r['md_step_s'] * 1e3:.2f} ms/step); MC dropout T={r['mc_passes']}: "
              f"{100 * r.get('mc_overhead_vs_one_pass', 0.0):+.1f} % vs one pass "
              f"({r['one_pass_call_s']:.3f} s, same run); stages "
              + ", ".join(f"{k} {v:.3f}s" for k, v in r["stages_s"].items()), flush=True)
    out = RESULTS
    data = json.loads(out.read_text()) if out.exists() else {}
    data["insitu_overhead"] = results
    out.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
