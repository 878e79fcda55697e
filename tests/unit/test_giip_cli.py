"""``insitu giip sample | fit | extend`` on a small 2D crystal with vacancies."""

from __future__ import annotations

import numpy as np

from insitu.cli import main
from insitu.frame import Frame
from insitu.giip import GIIPModel
from insitu.giip.pipeline import LAESample
from insitu.io.lammps_dump import read_lammps_dump
from insitu.testing import write_dump


def crystal_2d(n=16, holes=(40, 120, 200)):
    a = 2 ** (1 / 6)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="xy")
    pos = np.column_stack([(a * (i + 0.5 * (j % 2))).ravel(),
                           (a * np.sqrt(3) / 2 * j).ravel(), np.zeros(n * n)])
    pos[:, :2] += np.random.default_rng(0).normal(0, 0.03, (n * n, 2))
    keep = np.setdiff1d(np.arange(n * n), holes)
    cell = np.diag([n * a, n * a * np.sqrt(3) / 2, 1.0])
    f = Frame(pos[keep], cell, [True, True, False], np.ones(len(keep), np.int64),
              np.arange(1, n * n + 1)[keep])
    return f


def test_giip_cli_sample_fit_extend(tmp_path, capsys):
    frame = crystal_2d()
    pe = np.where(np.arange(len(frame)) % 7 == 0, -2.0, -3.0)
    write_dump(tmp_path / "in.dump", frame, {"c_pe": pe})
    args = ["giip", "sample", str(tmp_path / "in.dump"), "-o", str(tmp_path / "s.npz"),
            "--n", "60", "--dim", "2", "--sigma", "0.5", "--inner", "1.3", "--outer", "1.75"]
    assert main(args) == 0
    sample = LAESample.load(tmp_path / "s.npz")
    assert len(sample.laes) == 60 and sample.settings.dim == 2
    assert main(["giip", "fit", str(tmp_path / "s.npz"), "-o", str(tmp_path / "m.npz"),
                 "--eps", "1.0", "--diameter", "0.8", "--n-coords", "4"]) == 0
    model = GIIPModel.load(tmp_path / "m.npz")
    assert len(model.train) == 60
    assert main(["giip", "extend", str(tmp_path / "in.dump"), "-m", str(tmp_path / "m.npz"),
                 "-o", str(tmp_path / "out.dump")]) == 0
    out = read_lammps_dump(tmp_path / "out.dump")
    cols = out.info["columns"]
    assert {"giip_cluster", "giip_c1", "giip_c4", "giip_nearest", "giip_wsum"} <= set(cols)
    assert len(out) == len(frame) and (cols["giip_cluster"] >= 0).all()
    # the 18 neighbours of the three vacancies have ~5 neighbours, the rest 6
    ws = cols["giip_wsum"]
    assert np.sum(ws < 5.5) == 18
    # sampled atoms are placed where the fit put them (distance 0 to themselves)
    idx = np.searchsorted(out.ids, sample.atom_id)
    assert np.allclose(cols["giip_nearest"][idx], 0.0, atol=1e-4)
    # energy selection: the lowest / highest energies of the dump
    assert main(args[:-8] + ["--select", "energy", "--n-low", "0", "--n", "10", "--dim", "2",
                             "--sigma", "0.5", "--inner", "1.3", "--outer", "1.75"]) == 0
    hi = LAESample.load(tmp_path / "s.npz")
    assert np.all(hi.energy == -2.0)
    assert main(["giip", "fit", str(tmp_path / "nothing.npz"), "-o",
                 str(tmp_path / "x.npz")]) == 1
    assert "ERROR insitu giip fit" in capsys.readouterr().err
