"""The ``insitu`` command table: every command is importable, documented and runnable."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import insitu
from insitu.cli import COMMANDS, main


def test_commands_are_unique_and_complete():
    names = [name for name, _ in COMMANDS]
    assert len(names) == len(set(names))
    assert {"doctor", "run", "lmp", "env", "bench", "classify", "train", "validate", "plot",
            "ramp"} <= set(names)


@pytest.mark.parametrize("name,module_name", COMMANDS)
def test_command_module_interface(name, module_name):
    module = importlib.import_module(module_name)
    assert isinstance(module.HELP, str) and module.HELP
    assert callable(module.add_arguments)
    assert callable(module.run)


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"insitu {insitu.__version__}"


def test_missing_optional_dependency_names_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` -> ModuleNotFoundError
    rc = main(["train", "fit", "--data", str(tmp_path / "none.h5"), "--out",
               str(tmp_path / "m.onnx")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "torch" in err and "pip install 'insitu[training]'" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_arguments_are_rejected_without_passthrough(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["env", "--no-such-flag"])
    assert exc.value.code == 2


def test_lammps_arguments_are_passed_verbatim(monkeypatch, tmp_path):
    seen = {}
    run_module = importlib.import_module("insitu.cli.run")
    lmp_module = importlib.import_module("insitu.cli.lmp")
    monkeypatch.setattr(run_module, "run", lambda args: seen.setdefault("run", args) and 0)
    monkeypatch.setattr(lmp_module, "run", lambda args: seen.setdefault("lmp", args) and 0)
    main(["run", "in.lmp", "-var", "T", "300", "-log", "x", "-echo", "screen"])
    assert seen["run"].script == "in.lmp"
    assert seen["run"].passthrough == ["-var", "T", "300", "-log", "x", "-echo", "screen"]
    main(["lmp", "--binary", "/bin/lmp", "-in", "in.lmp", "-var", "T", "300"])
    assert seen["lmp"].binary == "/bin/lmp"
    assert seen["lmp"].passthrough == ["-in", "in.lmp", "-var", "T", "300"]


def test_bench_without_benchmarks_says_so(tmp_path, capsys):
    assert main(["bench", "--dir", str(tmp_path / "missing")]) == 2
    assert "--dir" in capsys.readouterr().err


@pytest.mark.parametrize("args", [[]] + [[name] for name, _ in COMMANDS])
def test_help(args):
    proc = subprocess.run([sys.executable, "-m", "insitu", *args, "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: insitu" in proc.stdout
