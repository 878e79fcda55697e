"""Driver mode without LAMMPS: how the input script is split at the fix external, and how
``insitu run`` separates the driver options from LAMMPS's arguments."""

from __future__ import annotations

import argparse

import pytest

from insitu.cli.run import driver_arguments
from insitu.coupling.driver import split_script
from insitu.coupling.mpi import InsituError

SCRIPT = '''units metal
print """a fix nm all external
pf/callback 5 1 inside quotes"""
fix nm all &
    external pf/callback 5 1   # the analysis
label again
run 10
jump SELF again
'''


def test_split_after_the_fix_command_keeps_line_numbers():
    head, rest = split_script(SCRIPT, "nm", "in.lmp")
    assert head.splitlines()[-2:] == ["fix nm all &", "    external pf/callback 5 1   # the "
                                      "analysis"]
    assert "print" in head and "label" not in head
    lines = rest.splitlines()
    assert len(lines) == len(SCRIPT.splitlines())
    assert not any(lines[:5]) and lines[5:] == ["label again", "run 10", "jump SELF again"]


@pytest.mark.parametrize("text,message", [
    ("units metal\nrun 10\n", "has no 'fix nm all external pf/callback N 1'"),
    ("fix nm all external pf/array 1\n", "must be 'fix nm <group> external pf/callback N 1'"),
    ("label a\njump SELF a\nfix nm all external pf/callback 5 1\n", "cannot run a jump"),
    ("fix nm2 all external pf/callback 5 1\n", "has no 'fix nm"),
])
def test_scripts_the_driver_cannot_run_are_refused(text, message):
    with pytest.raises(InsituError, match=message.replace("(", r"\(").replace("[", r"\[")):
        split_script(text, "nm", "in.lmp")


def test_driver_options_lead_the_lammps_arguments():
    args = argparse.Namespace(model=None, fix=None, passthrough=[
        "--model", "crystal-boo", "--fix", "nm", "every=5", "log=a=b.h5", "-var", "x", "k=v"])
    assert driver_arguments(args) == ["every=5", "log=a=b.h5"]
    assert (args.model, args.fix, args.passthrough) == ("crystal-boo", "nm", ["-var", "x", "k=v"])
    plain = argparse.Namespace(model=None, fix=None, passthrough=["-var", "T", "300"])
    assert driver_arguments(plain) == [] and plain.model is None
