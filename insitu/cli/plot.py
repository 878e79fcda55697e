"""``insitu plot LOG.h5 -o PNG``: phase fractions and potential energy against temperature.

One column per stage of the ramp in the log (heating; quench with the temperature axis
reversed, as in the Neighbors Map paper's Figs. 5 and 7), the validation temperatures
marked. Needs matplotlib: ``pip install 'insitu[plotting]'``.
"""

from __future__ import annotations

import argparse
import sys

HELP = "plot an in-situ log: fractions and PE against temperature (insitu plot LOG.h5 -o PNG)"

INSTALL_HINT = "pip install 'insitu[plotting]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu plot``."""
    parser.add_argument("log", help="in-situ HDF5 log")
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")
    parser.add_argument("--title", default=None, help="figure title (default: the system, atom "
                        "and MPI rank counts, and the model, from the log)")
    parser.add_argument("--temperature", default="auto", choices=("auto", "target", "measured"),
                        help="temperature axis: thermostat set-point when logged (auto), or "
                        "the measured temperature")
    parser.add_argument("--no-validation", action="store_true",
                        help="do not mark the validation temperatures")


def run(args: argparse.Namespace) -> int:
    """Write the PNG; exit 2 with an install hint when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        print(f"insitu plot: needs matplotlib, which is not installed: {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    from insitu.analysis.plotting import plot_log

    png = plot_log(args.log, args.output, title=args.title, temperature=args.temperature,
                   validation=not args.no_validation)
    print(f"plot written to {png}")
    return 0
