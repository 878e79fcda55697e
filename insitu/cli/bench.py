"""``insitu bench``: run the benchmark scripts of a source checkout.

The benchmarks (``benchmarks/*.py``) ship with the repository, not with the installed package:
``insitu bench`` finds them in the source checkout insitu runs from, or in ``--dir``. Each
script merges its figures into ``results.json`` next to it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HELP = "run the benchmarks of a source checkout (writes benchmarks/results.json)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``insitu bench``."""
    parser.add_argument("--only", nargs="*", metavar="NAME",
                        help="benchmark names (file stems) to run (default: all)")
    parser.add_argument("--dir", default=None, metavar="BENCHMARKS",
                        help="folder of the benchmark scripts (default: benchmarks/ of the "
                        "source checkout insitu runs from)")


def benchmarks_dir(explicit: str | None = None) -> Path | None:
    """The benchmarks folder: ``explicit`` if given, else the source checkout's, else None."""
    if explicit is not None:
        return Path(explicit)
    from insitu.resources import source_checkout

    root = source_checkout()
    return None if root is None else root / "benchmarks"


def run(args: argparse.Namespace) -> int:
    """Run every benchmark script (or those of ``--only``); 2 when there is none to run."""
    bench_dir = benchmarks_dir(args.dir)
    if bench_dir is None or not bench_dir.is_dir():
        where = (f"'{bench_dir}' is not a folder" if bench_dir is not None else
                 "insitu is not running from a source checkout")
        print(f"insitu bench: no benchmarks to run: {where}. The benchmarks ship with the "
              "repository, not with the package: run from a clone, or pass --dir "
              "path/to/benchmarks", file=sys.stderr)
        return 2
    scripts = sorted(p for p in bench_dir.glob("*.py") if not p.name.startswith("_"))
    if args.only:
        unknown = sorted(set(args.only) - {p.stem for p in scripts})
        if unknown:
            print(f"insitu bench: no benchmark named {', '.join(unknown)} in {bench_dir} "
                  f"(have: {', '.join(p.stem for p in scripts)})", file=sys.stderr)
            return 2
        scripts = [p for p in scripts if p.stem in args.only]
    if not scripts:
        print(f"insitu bench: no benchmark scripts in {bench_dir}", file=sys.stderr)
        return 2
    rc = 0
    for p in scripts:
        print(f"== {p.name}", flush=True)
        rc |= subprocess.call([sys.executable, str(p)], cwd=bench_dir.resolve().parent)
    print(f"results: {bench_dir / 'results.json'}")
    return 1 if rc else 0
