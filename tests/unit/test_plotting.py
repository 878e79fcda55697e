"""`insitu plot` (insitu.analysis.plotting, insitu.cli.plot): fractions and PE against
temperature from a (synthetic) in-situ log."""

from __future__ import annotations

import matplotlib  # noqa: E402,F401
import numpy as np
import pytest
from ramp_logs import ni_ramp_log, synthetic_ramp, write_synthetic_log

from insitu.analysis import plotting
from insitu.cli import main as cli_main


@pytest.fixture
def ni_log(tmp_path):
    return ni_ramp_log(tmp_path / "ni.h5")


def _png_ok(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_plot_log_writes_png(ni_log, tmp_path):
    out = plotting.plot_log(ni_log, tmp_path / "sub" / "ni.png")
    assert _png_ok(out)


def test_figure_layout_heating_and_reversed_quench(ni_log):
    import matplotlib.pyplot as plt

    fig = plotting.make_figure(ni_log)
    try:
        axes = np.array(fig.axes).reshape(2, 2)
        (f_heat, f_quench), (e_heat, e_quench) = axes
        assert "Heating" in f_heat.get_title() and "Quench" in f_quench.get_title()
        lo, hi = e_heat.get_xlim()
        assert lo < hi                      # heating: temperature increases to the right
        lo, hi = e_quench.get_xlim()
        assert lo > hi                      # quench: reversed, as in the paper
        assert "(K)" in e_heat.get_xlabel() and "eV/atom" in e_heat.get_ylabel()
        labels = [t.get_text() for t in f_heat.get_legend().get_texts()]
        assert "fcc" in labels and "fcc (CNA)" in labels
        assert any(lbl.startswith("PE jump") for lbl in labels)
        assert "hcp (CNA)" not in labels  # all-zero reference left out
        cna_line = [ln for ln in f_heat.get_lines() if ln.get_label() == "fcc (CNA)"]
        assert cna_line[0].get_linestyle() == "--"
        qlabels = [t.get_text() for t in f_quench.get_legend().get_texts()]
        assert "amorphous" in qlabels
        assert any(lbl.startswith("PE slope change") for lbl in qlabels)
    finally:
        plt.close(fig)


def test_quench_only_log_has_one_column(tmp_path):
    import matplotlib.pyplot as plt

    t, pe, frac, stage = synthetic_ramp(heating=False, t_glass=700, t_amo50=720,
                                        classes=("liquid", "amorphous"))
    path = write_synthetic_log(tmp_path / "cuzr.h5", t, pe, frac, stage)
    fig = plotting.make_figure(path)
    try:
        assert len(fig.axes) == 2
        lo, hi = fig.axes[1].get_xlim()
        assert lo > hi
    finally:
        plt.close(fig)


def test_plot_command(ni_log, tmp_path, capsys):
    out = tmp_path / "cli.png"
    assert cli_main(["plot", str(ni_log), "-o", str(out), "--no-validation",
                     "--temperature", "measured", "--title", "T"]) == 0
    assert _png_ok(out)
    assert str(out) in capsys.readouterr().out


def test_plot_command_requires_output(ni_log):
    with pytest.raises(SystemExit) as exc:
        cli_main(["plot", str(ni_log)])
    assert exc.value.code == 2


def test_plot_command_without_matplotlib(ni_log, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import -> ModuleNotFoundError
    assert cli_main(["plot", str(ni_log), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "pip install 'insitu[plotting]'" in err
    assert not (tmp_path / "x.png").exists()
