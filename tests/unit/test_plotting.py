"""`insitu plot`: fractions and PE against temperature from a (synthetic) in-situ log."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from test_ramps import synthetic_ramp, write_synthetic_log  # noqa: E402

from insitu import plotting  # noqa: E402


@pytest.fixture
def ni_log(tmp_path):
    t, pe, frac, stage = synthetic_ramp(noise=0.002)
    cna = np.clip(1.0 - (t - 300.0) / 1200.0, 0, 1) * (stage == 1)
    return write_synthetic_log(tmp_path / "ni.h5", t, pe, frac, stage,
                               extra={"cna_fcc": cna, "cna_hcp": 0 * t})


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
        assert "fcc (learned)" in labels and "fcc (CNA reference)" in labels
        assert any(lbl.startswith("PE jump") for lbl in labels)
        assert "hcp (CNA reference)" not in labels  # all-zero reference left out
        cna_line = [ln for ln in f_heat.get_lines() if ln.get_label() == "fcc (CNA reference)"]
        assert cna_line[0].get_linestyle() == "--"
        qlabels = [t.get_text() for t in f_quench.get_legend().get_texts()]
        assert "amorphous (learned)" in qlabels
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


def test_main_plot_cli(ni_log, tmp_path, capsys):
    out = tmp_path / "cli.png"
    assert plotting.main_plot([str(ni_log), "-o", str(out), "--no-validation"]) == 0
    assert _png_ok(out)
    assert str(out) in capsys.readouterr().out
