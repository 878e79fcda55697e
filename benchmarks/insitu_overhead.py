"""Cost of one in-situ analysis call, in MD steps of the same run, as the user pays it.

    .venv/bin/python benchmarks/insitu_overhead.py [--cells 20] [--nprocs 2] [--every 20]
        [--calls 10] [--repeats 3] [--models crystal-nm crystal-boo]

EAM Ni, 32,000 atoms (20^3 fcc cells) at 900 K, 2 MPI ranks, one LAMMPS job per model
(:func:`_bench.analysis_cost`): MD alone, then the model attached every 20 steps as
shipped (its default MC-dropout passes T and its neighbour consensus), then with
``mc_passes=1`` (the deterministic network), then with ``consensus=no`` (per-atom labels),
and, for a model with a screening network (:mod:`insitu.model.screen`), with ``screen=no``
(the model's own network on every atom), and for a model whose MC-dropout head runs in
numba (:mod:`insitu.model.mc_head`) with a copy of it whose passes run through
onnxruntime ("graph head"), each followed by MD alone again, the whole
sequence ``--repeats`` times, all in the same job. The cost of a call is the difference of
LAMMPS's own loop times (HDF5 log included) per call against the MD-only blocks beside it,
the median over the rounds (each round kept), and the same difference of the Modify section
of LAMMPS's timing breakdown (where the fix runs; free of the MD's own scatter) beside it,
with the force loop's change; in MD steps it is divided by the time of one
MD step of the same run at the same ghost cutoff (the MD step at LAMMPS's default ghost
cutoff is recorded too: a larger ``comm_modify cutoff`` is part of the price). Results go
to benchmarks/results.json under "insitu_overhead", with the date, command, load average
and CPU instruction set.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _bench import analysis_cost, finish, machine_state, merge_results

from insitu.model import Classifier
from insitu.resources import model_path

# as shipped (T = 20, neighbour consensus, screen), the deterministic network, per-atom
# labels; the model's own network on every atom where it has a screen; and where its MC
# head runs in numba, the same passes through onnxruntime ("graph head")
VARIANTS = {"default": "", "T=1": "mc_passes=1", "no consensus": "consensus=no"}
NO_SCREEN = {"no screen": "screen=no"}


def graph_head_copy(path: Path, folder: Path) -> Path:
    """A copy of the model whose MC passes run through onnxruntime with float32 masks, as
    before :mod:`insitu.model.mc_head` (the head's graph outputs removed)."""
    import onnx

    from insitu.training.head_outputs import hide_head

    proto = onnx.load(str(path))
    hide_head(proto)
    out = folder / f"{path.stem}-graph-head.onnx"
    onnx.save(proto, str(out))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=20, help="fcc cells per side (4 cells^3 atoms)")
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--every", type=int, default=20, help="analysis interval (MD steps)")
    ap.add_argument("--calls", type=int, default=10, help="analysis calls measured per run")
    ap.add_argument("--repeats", type=int, default=3,
                    help="rounds of (analysis, MD alone) per variant; the median is reported")
    ap.add_argument("--models", nargs="*", default=["crystal-nm", "crystal-boo"],
                    help="shipped model names or .onnx paths")
    ap.add_argument("--key", default="insitu_overhead", help="results.json key")
    args = ap.parse_args()
    entry = machine_state() | {"models": {}}
    with tempfile.TemporaryDirectory() as tmp:  # the graph-head copies, removed at the end
        for name in args.models:
            measure(name, args, Path(tmp), entry)
    print(f"merged into {merge_results(args.key, finish(entry, args.nprocs))} under '{args.key}'")
    return 0


def measure(name: str, args, tmp: Path, entry: dict) -> None:
    """One model's variants in one LAMMPS job, into ``entry["models"]``, and a summary."""
    path = model_path(name)
    clf = Classifier.load(path)
    variants = VARIANTS | (NO_SCREEN if clf.screen is not None else {})
    if clf.head is not None:  # the same model with its MC passes through onnxruntime
        variants["graph head"] = f"model={graph_head_copy(path, tmp)}"
    r = analysis_cost(path, args.cells, args.nprocs, args.every, args.calls,
                      variants=variants, repeats=args.repeats)
    entry["models"][r["model"]] = r
    runs = "; ".join(f"{k}: {v['call_s']:.3f} s = {v['md_steps_per_call']:.1f} MD steps "
                     f"(rounds {v['md_steps_per_call_range'][0]:.1f}-"
                     f"{v['md_steps_per_call_range'][1]:.1f}; Modify section "
                     f"{v['modify_call_s']:.3f} s = {v['md_steps_per_call_modify']:.1f} MD "
                     f"steps, force loop {1e3 * v['pair_change_per_call_s']:+.1f} ms; "
                     "internal timer "
                     f"{v['internal_timer_call_s']:.3f} s)"
                     for k, v in r["runs"].items())
    print(f"{r['model']}: {r['atoms']} atoms on {r['ranks']} ranks, MD step "
          f"{1e3 * r['md_step_s']:.2f} ms at ghost cutoff {r['comm_cutoff_angstrom']} A "
          f"({1e3 * r['md_step_default_ghosts_s']:.2f} ms at LAMMPS's default); one call "
          f"{runs}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
