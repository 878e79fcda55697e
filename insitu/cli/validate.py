"""``insitu validate LOG.h5 [LOG.h5 ...]``: check a ramp's learned fractions against PE(T).

Heating: the temperature where the crystal fraction crosses 50 % against the PE jump
(melting; goal within 50 K). Quench: where the amorphous fraction crosses 50 % against the
change of slope of PE(T) (glass transition; goal within 150 K), and the crystal fraction
during the quench at most 0.10 above its final value (no phantom crystal in the supercooled
liquid). Neighbors Map paper, Figs. 5 and 7. A run whose velocity seed (``run_seed``) is one
the model was trained on is flagged and fails. Exit status 0 when every goal that applies is
met, 1 when one is not.
"""

from __future__ import annotations

import argparse

HELP = ("ramp validation: where the learned fractions cross one half vs the PE jump "
        "(heating) and the PE(T) slope change (quench), crystal excess in the quench")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu validate``."""
    parser.add_argument("logs", nargs="+", help="in-situ HDF5 log(s) of a heating / quench ramp")
    parser.add_argument("--temperature", default="auto", choices=("auto", "target", "measured"),
                        help="temperature axis: thermostat set-point when logged (auto), or the "
                        "measured temperature")
    parser.add_argument("--quench-t-min", type=float, default=None,
                        help="lowest temperature of the two-slope fit on the quench")
    parser.add_argument("--quench-t-max", type=float, default=None,
                        help="highest temperature of that fit (default 90 %% of the quench's "
                        "top)")
    parser.add_argument("--energy", default="auto", choices=("auto", "interval", "step"),
                        help="energy reference: the potential energy averaged over each "
                        "analysis interval when logged (extra/pe_mean; auto), or the energy at "
                        "each analysis step")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    """Validate every log; print the reports (or one JSON object keyed by log path)."""
    import json

    from insitu.analysis.validation import format_report, goals_met, jsonable, validate_log

    ok = True
    out = {}
    for path in args.logs:
        rep = validate_log(path, args.temperature, args.quench_t_min, args.quench_t_max,
                           energy=args.energy)
        out[path] = rep
        ok = goals_met(rep) and ok
        if not args.json:
            print(format_report(rep, path))
    if args.json:
        print(json.dumps(jsonable(out), indent=2))
    return 0 if ok else 1
