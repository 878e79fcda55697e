"""The log as a table (pandas takes it as it is) and a plot fit for a talk: default title
from the log's metadata, axis labels without implementation notes, MI when logged."""

from __future__ import annotations

import h5py
import matplotlib
import numpy as np
import pandas as pd
import pytest
from ramp_logs import ni_ramp_log

from insitu.analysis import plotting
from insitu.io.log_table import read_table
from insitu.io.phase_log import PhaseLog, read_log

matplotlib.use("Agg")


def with_metadata_and_mi(path, mi=True):
    with h5py.File(path, "a") as f:
        n = len(f["step"])
        f.attrs["input_script"] = "lmp -in /runs/lammps_inputs/ni_melt_quench.lmp -var x 1"
        f.attrs["descriptor"] = '{"kind": "neighbors_map", "cutoff": 4.6}'
        if mi:
            f["mi"] = 0.02 + 0.3 * np.exp(-((np.arange(n) - 150) / 15.0) ** 2)
            f["uncertain"] = np.where(f["mi"][()] > 0.2, 0.1, 0.0)
    return path


def test_table_goes_into_pandas_as_it_is(tmp_path):
    path = with_metadata_and_mi(ni_ramp_log(tmp_path / "ni.h5"))
    table = read_table(path)
    log = read_log(path)
    df = pd.DataFrame(table)
    df.attrs.update(table.attrs)
    assert len(df) == len(log)
    for column in ("step", "temperature", "potential_energy", "pe_per_atom", "fraction_fcc",
                   "fraction_unknown", "count_liquid", "timing_total_s", "t_target", "cna_fcc",
                   "mi", "uncertain"):
        assert column in df.columns, column
    np.testing.assert_array_equal(df["fraction_fcc"], log.fractions["fcc"])
    np.testing.assert_array_equal(df["pe_per_atom"], log.pe_per_atom())
    assert df.attrs["classes"] == ["fcc", "liquid", "amorphous"]
    assert df.attrs["n_ranks"] == 2 and df.attrs["n_atoms"] == 1000.0


def test_table_of_a_real_phase_log_has_units(tmp_path):
    log = PhaseLog(tmp_path / "run.h5", ["fcc", "liquid"], ["descriptor", "total"],
                   extra=["t_target"], attrs={"n_ranks": 4}, extra_units={"t_target": "K"})
    for i in range(3):
        log.append(100 * i, {"temperature": 300.0 + i, "potential_energy": -4.0},
                   np.array([90, 10, 0]), 0.9, {"descriptor": 0.1, "total": 0.2},
                   {"t_target": 300.0})
    table = read_table(tmp_path / "run.h5")
    df = pd.DataFrame(table)
    assert df.shape[0] == 3 and list(df["step"]) == [0, 100, 200]
    np.testing.assert_allclose(df["fraction_fcc"], 0.9)
    assert table.attrs["column_units"]["temperature"] == "K"
    assert table.attrs["column_units"]["timing_total_s"] == "s"
    assert table.attrs["column_units"]["t_target"] == "K"


def test_default_title_names_system_model_and_ranks(tmp_path):
    path = with_metadata_and_mi(ni_ramp_log(tmp_path / "ni.h5"))
    title = plotting.default_title(read_log(path), path)
    assert title == ("ni melt quench: 1,000 atoms on 2 MPI ranks, model "
                     "ni-fcc-liquid-amorphous (Neighbors Map)")


def test_system_name_from_the_input_script(tmp_path):
    path = with_metadata_and_mi(ni_ramp_log(tmp_path / "ni.h5"))
    log = read_log(path)
    log.attrs["input_script"] = "/usr/bin/lmp -in ../in.quickstart -var model m.onnx"
    assert plotting.default_title(log, path).startswith("quickstart: 1,000 atoms")
    log.attrs.pop("input_script")
    assert plotting.default_title(log, path).startswith("ni: 1,000 atoms")  # the log's name


@pytest.mark.parametrize("temperature", ["auto", "measured"])
def test_labels_have_no_implementation_notes_and_mi_is_drawn(tmp_path, temperature):
    import matplotlib.pyplot as plt

    path = with_metadata_and_mi(ni_ramp_log(tmp_path / "ni.h5"))
    fig = plotting.make_figure(path, temperature=temperature)
    try:
        assert fig._suptitle.get_text().startswith("ni melt quench: 1,000 atoms on 2 MPI ranks")
        texts = [ax.get_title() for ax in fig.axes] + [ax.get_xlabel() for ax in fig.axes] + \
            [ax.get_ylabel() for ax in fig.axes]
        for ax in fig.axes:
            if ax.get_legend():
                texts += [t.get_text() for t in ax.get_legend().get_texts()]
        joined = " | ".join(texts)
        for note in ("learned", "below threshold", "reversed", "reference", "mean"):
            assert note not in joined, note
        mi_axes = [ax for ax in fig.axes if ax.get_ylabel() == "Mutual information (bits)"]
        assert len(mi_axes) == 2  # heating and quench panels
        assert len({ax.get_ylim() for ax in mi_axes}) == 1  # one scale for both
    finally:
        plt.close(fig)


def test_no_mi_axis_without_mi(tmp_path):
    import matplotlib.pyplot as plt

    fig = plotting.make_figure(with_metadata_and_mi(ni_ramp_log(tmp_path / "ni.h5"), mi=False))
    try:
        assert not [ax for ax in fig.axes if "Mutual" in ax.get_ylabel()]
    finally:
        plt.close(fig)


_WRITER = """
import sys, time
import numpy as np
from insitu.io.phase_log import PhaseLog
log = PhaseLog(sys.argv[1], ["fcc", "liquid"], ["total"], keep_open=True)
for i in range(5):
    log.append(10 * i, {"temperature": 300.0}, np.array([7, 2, 1]), 0.9, {"total": 0.1})
print("written", flush=True)
time.sleep(600)
"""


def test_log_kept_open_is_readable_while_written_and_after_sigkill(tmp_path):
    """The in-situ writer keeps the file open between rows: every row is on disk when
    append returns, for a reader while the writer lives and after it is killed."""
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "kept.h5"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        live = read_log(path)
        np.testing.assert_array_equal(live.step, [0, 10, 20, 30, 40])
        np.testing.assert_array_equal(live.counts["liquid"], [2] * 5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    after = read_log(path)
    np.testing.assert_array_equal(after.step, [0, 10, 20, 30, 40])
    np.testing.assert_allclose(after.fractions["fcc"], 0.7)
    with h5py.File(path, "a") as f:  # the killed writer left no lock or open-file mark
        assert len(f["step"]) == 5
