"""The ``insitu`` command line.

One table, :data:`COMMANDS`, names every subcommand and the module that implements it. Each
command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``,
and imports only the standard library at top level: numpy, LAMMPS, torch or matplotlib are
imported inside ``run``. A command whose optional dependency is missing stays listed and, when
run, names the extra to install and exits 2. A module may also define
``passthrough(argv, args) -> list[str]``: from the arguments after the subcommand, those that
belong to another program (LAMMPS for ``insitu run`` and ``insitu lmp``), verbatim and in
order; ``main`` stores them in ``args.passthrough``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["COMMANDS", "OPTIONAL_DEPENDENCIES", "build_parser", "main"]

COMMANDS: list[tuple[str, str]] = [
    ("doctor", "insitu.cli.doctor"),
    ("run", "insitu.cli.run"),
    ("lmp", "insitu.cli.lmp"),
    ("env", "insitu.cli.env"),
    ("bench", "insitu.cli.bench"),
    ("classify", "insitu.cli.classify"),
    ("train", "insitu.cli.train"),
    ("validate", "insitu.cli.validate"),
    ("plot", "insitu.cli.plot"),
    ("ramp", "insitu.cli.ramp"),
    ("giip", "insitu.cli.giip"),
]

# Top-level module -> how to get it. Extras are those of pyproject.toml.
OPTIONAL_DEPENDENCIES: dict[str, str] = {
    "torch": "pip install 'insitu[training]'",
    "onnx": "pip install 'insitu[training]'",
    "tqdm": "pip install 'insitu[training]'",
    "matplotlib": "pip install 'insitu[plotting]'",
    "scipy": "pip install 'insitu[giip]'",
    "ase": "pip install ase (reads extended XYZ and other formats; ase.Atoms in and out)",
    "ovito": "pip install ovito",
    "lammps": "install LAMMPS with its Python module and PYTHON package "
              "(scripts/setup.sh; `insitu doctor` checks it)",
}


def _version() -> str:
    import insitu

    return str(getattr(insitu, "__version__", "unknown"))


def load_command(module_name: str) -> ModuleType:
    """Import a command module and check that it has the command interface."""
    module = importlib.import_module(module_name)
    missing = [a for a in ("HELP", "add_arguments", "run") if not hasattr(module, a)]
    if missing:
        raise TypeError(f"{module_name} is not an insitu command module (no {', '.join(missing)})")
    return module


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The ``insitu`` parser built from :data:`COMMANDS`, and the command modules by name."""
    parser = argparse.ArgumentParser(
        prog="insitu", description="Learned per-atom structural analysis inside LAMMPS.")
    parser.add_argument("--version", action="version", version=f"insitu {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules: dict[str, ModuleType] = {}
    for name, module_name in COMMANDS:
        module = load_command(module_name)
        doc = (module.__doc__ or "").strip().replace("``", "`") or module.HELP
        p = sub.add_parser(name, help=module.HELP, description=doc,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        modules[name] = module
    return parser, modules


def missing_dependency_message(command: str, exc: ModuleNotFoundError) -> str | None:
    """One line naming what to install when ``exc`` is an optional dependency, else None."""
    top = (exc.name or "").split(".")[0]
    hint = OPTIONAL_DEPENDENCIES.get(top)
    if hint is None:
        return None
    return f"insitu {command}: needs the Python module '{top}', which is not installed: {hint}"


EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CRASH = 0, 1, 2, 3
"""Exit codes: success; a check failed (``validate``, ``doctor``); bad input; a bug."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``insitu`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, modules = build_parser()
    args, unknown = parser.parse_known_args(argv)
    module = modules[args.command]
    passthrough = getattr(module, "passthrough", None)
    if passthrough is not None:
        # Flags of the other program (-in, -var, -log ...) are kept verbatim, in order.
        args.passthrough = passthrough(argv[argv.index(args.command) + 1:], args)
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(module.run(args) or 0)
    except ModuleNotFoundError as exc:
        message = missing_dependency_message(args.command, exc)
        if message is None:
            return crashed(args.command)
        print(message, file=sys.stderr)
        return EXIT_BAD_INPUT
    except (FileNotFoundError, ValueError) as exc:  # bad input: a file, a model, a value
        print(f"insitu {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:  # noqa: BLE001 - a bug, not the user's input: say so, distinctly
        return crashed(args.command)


def crashed(command: str) -> int:
    """Print the traceback of an unexpected error; exit code 3."""
    import traceback

    traceback.print_exc()
    print(f"insitu {command}: unexpected error (a bug in insitu: please report the traceback "
          "above)", file=sys.stderr)
    return EXIT_CRASH
