"""Strong scaling of the in-situ analysis time from 1 to 2 MPI ranks.

    .venv/bin/python benchmarks/insitu_scaling.py [--cells 20] [--ranks 1 2] [--repeats 3]
        [--pairs 3] [--models ...]

The same system and measurement as benchmarks/insitu_overhead.py (:func:`_bench.analysis_cost`,
cost of a call from LAMMPS's loop times with and without the analysis, median of
``--repeats`` rounds, default MC passes) on 1 and on 2 ranks; efficiency = t(1 rank) /
(2 t(2 ranks)), also from the Modify section of LAMMPS's timing breakdown (the same
difference without the MD's own scatter, :func:`_bench.analysis_cost`) and from the
internal timer (slowest rank), and the MD step's own efficiency beside them (what the
machine lets a parallel job gain).
``--pairs`` P: P jobs on each rank count, alternating (1, 2, 2, 1, 1, 2, ...), each pair
of neighbouring jobs giving one efficiency; the figure is their median, every pair kept
(on a shared machine the speed drifts over minutes: one job on each count compares two
moments, not two rank counts). Needs as many idle cores as ranks to mean anything.
Each measured block runs as one LAMMPS run per call (``split_runs`` of
:func:`_bench.analysis_cost`; ``--whole-blocks``: one run per block), so the efficiency is
also given from the median call (loop time and Modify section): on a machine without a
spare core, a burst of other work stalls one of the 2 ranks and the other waits for it,
while the 1-rank job's idle core takes it; the block sums keep every burst.
Results under "insitu_scaling" in benchmarks/results.json.
"""

from __future__ import annotations

import argparse

import numpy as np
from _bench import analysis_cost, finish, machine_state, merge_results

from insitu.resources import model_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=20, help="fcc cells per side (4 cells^3 atoms)")
    ap.add_argument("--ranks", type=int, nargs=2, default=[1, 2])
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="rounds per job (median)")
    ap.add_argument("--pairs", type=int, default=3, help="jobs per rank count (alternating)")
    ap.add_argument("--models", nargs="*", default=["crystal-nm", "crystal-boo"])
    ap.add_argument("--whole-blocks", action="store_true",
                    help="one LAMMPS run per measured block (no per-call medians)")
    ap.add_argument("--key", default="insitu_scaling", help="results.json key")
    args = ap.parse_args()
    entry = machine_state() | {"models": {}}
    lo, hi = args.ranks
    for name in args.models:
        pairs = []
        for p in range(args.pairs):
            job = {}
            for n in ((lo, hi) if p % 2 == 0 else (hi, lo)):  # alternating: drift cancels
                r = analysis_cost(model_path(name), args.cells, n, args.every, args.calls,
                                  repeats=args.repeats, split_runs=not args.whole_blocks)
                run = next(iter(r["runs"].values()))
                job[n] = (run["call_s"], run["modify_call_s"], run["internal_timer_call_s"],
                          r["md_step_s"], run.get("call_s_run_median"),
                          run.get("modify_call_s_run_median"))
            calls, modify, internal, md, median, modify_median = (
                {n: job[n][i] for n in (lo, hi)} for i in range(6))
            pairs.append({"call_s_by_ranks": calls,
                          "strong_scaling_efficiency": _efficiency(calls, lo, hi),
                          "modify_call_s_by_ranks": modify,
                          "modify_efficiency": _efficiency(modify, lo, hi),
                          "internal_timer_call_s_by_ranks": internal,
                          "internal_timer_efficiency": _efficiency(internal, lo, hi),
                          "md_step_s_by_ranks": md, "md_step_efficiency": _efficiency(md, lo, hi)})
            if not args.whole_blocks:
                pairs[-1].update({
                    "median_call_s_by_ranks": median,
                    "median_call_efficiency": _efficiency(median, lo, hi),
                    "modify_median_call_s_by_ranks": modify_median,
                    "modify_median_call_efficiency": _efficiency(modify_median, lo, hi)})
            print(f"{r['model']}, pair {p + 1}: one call {calls[lo]:.3f} s on {lo} rank(s), "
                  f"{calls[hi]:.3f} s on {hi}: {100 * pairs[-1]['strong_scaling_efficiency']:.0f} %"
                  f" (Modify section {modify[lo]:.3f} s, {modify[hi]:.3f} s: "
                  f"{100 * pairs[-1]['modify_efficiency']:.0f} %; internal timer "
                  f"{internal[lo]:.3f} s, {internal[hi]:.3f} s: "
                  f"{100 * pairs[-1]['internal_timer_efficiency']:.0f} %; the MD step "
                  f"{1e3 * md[lo]:.1f} ms, {1e3 * md[hi]:.1f} ms: "
                  f"{100 * pairs[-1]['md_step_efficiency']:.0f} %)" + (
                      "" if args.whole_blocks else
                      f"; median call {median[lo]:.3f} s, {median[hi]:.3f} s: "
                      f"{100 * pairs[-1]['median_call_efficiency']:.0f} % (Modify "
                      f"{100 * pairs[-1]['modify_median_call_efficiency']:.0f} %)"), flush=True)
        keys = ["strong_scaling_efficiency", "modify_efficiency", "internal_timer_efficiency",
                "md_step_efficiency"]
        if not args.whole_blocks:
            keys += ["median_call_efficiency", "modify_median_call_efficiency"]
        summary = {k: float(np.median([q[k] for q in pairs])) for k in keys}
        entry["models"][r["model"]] = {"atoms": r["atoms"], **summary, "pairs": pairs}
        print(f"{r['model']}: {r['atoms']} atoms, median of {len(pairs)} pairs: efficiency "
              f"{100 * summary['strong_scaling_efficiency']:.0f} % (Modify section "
              f"{100 * summary['modify_efficiency']:.0f} %, internal timer "
              f"{100 * summary['internal_timer_efficiency']:.0f} %, the MD step "
              f"{100 * summary['md_step_efficiency']:.0f} %)" + (
                  "" if args.whole_blocks else
                  f"; from the median call {100 * summary['median_call_efficiency']:.0f} % "
                  f"(Modify {100 * summary['modify_median_call_efficiency']:.0f} %)"),
              flush=True)
    print(f"merged into {merge_results(args.key, finish(entry, hi))} under '{args.key}'")
    return 0


def _efficiency(seconds: dict, lo: int, hi: int) -> float:
    return seconds[lo] * lo / (seconds[hi] * hi)


if __name__ == "__main__":
    raise SystemExit(main())
