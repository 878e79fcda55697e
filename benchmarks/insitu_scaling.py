"""Strong scaling of the in-situ analysis time from 1 to 2 MPI ranks.

    .venv/bin/python benchmarks/insitu_scaling.py [--cells 20] [--ranks 1 2] [--repeats 3]
        [--models ...]

The same system and measurement as benchmarks/insitu_overhead.py (:func:`_bench.analysis_cost`,
cost of a call from LAMMPS's loop times with and without the analysis, median of
``--repeats`` rounds, default MC passes)
on 1 and on 2 ranks; efficiency = t(1 rank) / (2 t(2 ranks)), also from the internal timer
(slowest rank) as a cross-check, and the MD step's own efficiency beside them (what the
machine lets a parallel job gain). Needs as many idle cores as ranks to mean anything: on a
busy machine the loop-time differences are noise. Results under "insitu_scaling" in
benchmarks/results.json.
"""

from __future__ import annotations

import argparse

from _bench import analysis_cost, finish, machine_state, merge_results

from insitu.resources import model_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=20, help="fcc cells per side (4 cells^3 atoms)")
    ap.add_argument("--ranks", type=int, nargs=2, default=[1, 2])
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3, help="rounds per measurement (median)")
    ap.add_argument("--models", nargs="*", default=["crystal-nm", "crystal-boo"])
    ap.add_argument("--key", default="insitu_scaling", help="results.json key")
    args = ap.parse_args()
    entry = machine_state() | {"models": {}}
    lo, hi = args.ranks
    for name in args.models:
        calls, internal, md = {}, {}, {}
        for n in (lo, hi):
            r = analysis_cost(model_path(name), args.cells, n, args.every, args.calls,
                              repeats=args.repeats)
            run = next(iter(r["runs"].values()))
            calls[n], internal[n] = run["call_s"], run["internal_timer_call_s"]
            md[n] = r["md_step_s"]
        eff = calls[lo] * lo / (calls[hi] * hi)
        eff_internal = internal[lo] * lo / (internal[hi] * hi)
        eff_md = md[lo] * lo / (md[hi] * hi)
        entry["models"][r["model"]] = {"atoms": r["atoms"], "call_s_by_ranks": calls,
                                        "strong_scaling_efficiency": eff,
                                        "internal_timer_call_s_by_ranks": internal,
                                        "internal_timer_efficiency": eff_internal,
                                        "md_step_s_by_ranks": md, "md_step_efficiency": eff_md}
        print(f"{r['model']}: {r['atoms']} atoms, one call {calls[lo]:.3f} s on {lo} rank(s), "
              f"{calls[hi]:.3f} s on {hi}: efficiency {100 * eff:.0f} % (internal timer: "
              f"{internal[lo]:.3f} s, {internal[hi]:.3f} s, {100 * eff_internal:.0f} %; the MD "
              f"step itself: {1e3 * md[lo]:.1f} ms, {1e3 * md[hi]:.1f} ms, {100 * eff_md:.0f} %)",
              flush=True)
    print(f"merged into {merge_results(args.key, finish(entry, hi))} under '{args.key}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
