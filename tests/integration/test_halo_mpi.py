"""The halo exchange (insitu.coupling.halo.Halo) under real mpirun: 2 or 3 ranks own slabs
of a periodic cell, each asks for the rows of the ghost atoms it sees (periodic images, atoms
that drifted out of their owner's slab) and gets what the owner holds; an id nobody owns
is reported not found. No LAMMPS here: the subdomains are given directly."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from lammps_helpers import lammps_env

SCRIPT = textwrap.dedent("""
    import sys
    import traceback

    import numpy as np
    from mpi4py import MPI
    from insitu.coupling.ghost_check import Subdomain
    from insitu.coupling.halo import Halo
    from insitu.locality import IdIndex

    def main(comm):
        rank, size = comm.Get_rank(), comm.Get_size()
        cell = np.array([10.0 * size, 10.0, 10.0])
        rng = np.random.default_rng(5)  # the same atoms on every rank
        home = rng.uniform(0, 1, (900, 3)) * cell
        x = home + rng.uniform(-0.4, 0.4, home.shape)  # drifted up to 0.4 A since assigned
        ids = np.arange(1, 901) * 7  # not 1..N
        owner = np.minimum((home[:, 0] / 10.0).astype(int), size - 1)
        lo, hi = np.array([rank / size, 0, 0]), np.array([(rank + 1) / size, 1, 1])
        box = Subdomain(np.zeros(3), np.diag(1 / cell), cell.copy(), np.ones(3, bool), lo, hi)
        reads = []  # each time the halo reads this rank's subdomain
        halo = Halo(comm, lambda: reads.append(1) or box, 1.0)
        mine = np.flatnonzero(owner == rank)
        values = (ids[mine] * 2.5).reshape(-1, 1) * np.ones((1, 3))
        # ghosts: every image within 3 A of this slab (in x) that is not an own atom
        shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1)
                           for k in (-1, 0, 1)])
        images = (x[None] + shifts[:, None] * cell).reshape(-1, 3)
        image_ids = np.tile(ids, len(shifts))
        image_owner = np.tile(owner, len(shifts))
        near = (images[:, 0] > 10 * rank - 3) & (images[:, 0] < 10 * (rank + 1) + 3)
        ghost = near & (image_owner != rank)
        needed = np.concatenate([image_ids[ghost], [5]])  # id 5: nobody's
        positions = np.concatenate([images[ghost], [[15.0, 5.0, 5.0]]])
        found, got, got_ids = halo(needed, positions, ids[mine], values, ids[mine])
        assert not found[-1] and found[:-1].all(), (rank, needed[:-1][~found[:-1]])
        assert not got[-1].any() and got_ids[-1] == 0  # rows not found are zero
        np.testing.assert_array_equal(got_ids[:-1], needed[:-1])
        np.testing.assert_allclose(got[:-1], needed[:-1, None] * 2.5 * np.ones((1, 3)))
        assert got.dtype == values.dtype and got_ids.dtype == ids.dtype
        # a rank that needs nothing still takes part (the call is collective)
        ask = slice(0, 0) if rank == 1 else slice(None)
        found, got = halo(needed[ask], positions[ask], ids[mine], values)
        assert found.sum() == (0 if rank == 1 else len(needed) - 1)
        assert len(reads) == 2  # without for_call every exchange reads the subdomains
        # distinct ids (each ghost once): on 2 ranks every one is the other rank's, asked
        # and answered in order; one call's exchanges read the subdomains once
        distinct, first = np.unique(image_ids[ghost], return_index=True)
        at = images[ghost][first]
        for k in range(2):
            found, got = halo.for_call()(distinct, at, ids[mine], values)
            assert found.all()
            np.testing.assert_allclose(got, distinct[:, None] * 2.5 * np.ones((1, 3)))
            found, got_ids = halo(distinct[::-1], at[::-1], ids[mine], ids[mine])
            np.testing.assert_array_equal(got_ids, distinct[::-1])
            assert len(reads) == 3 + k
        # a later exchange of the call asking the same IdIndex for a subset on every rank
        # reuses the first request; one rank asking for more makes every rank ask anew
        index = IdIndex(ids[mine])
        found, got = halo.for_call()(distinct, at, index, values)
        made = halo.n_requests
        some = np.arange(len(distinct)) % 3 == rank % 3
        found, got, got_ids = halo(distinct[some][::-1], at[some][::-1], index, values * 2,
                                   ids[mine])
        assert halo.n_requests == made and found.all()
        np.testing.assert_allclose(got, distinct[some][::-1, None] * 5.0 * np.ones((1, 3)))
        np.testing.assert_array_equal(got_ids, distinct[some][::-1])
        more = np.append(distinct[some], 5) if rank == size - 1 else distinct[some]
        where = np.concatenate([at[some], [[15.0, 5.0, 5.0]]])[:len(more)]
        found, got = halo(more, where, index, values)
        assert halo.n_requests == made + 1 and found[:len(distinct[some])].all()
        assert len(found) == len(distinct[some]) or not found[-1]
        np.testing.assert_allclose(got[found], more[found, None] * 2.5 * np.ones((1, 3)))
        # into: the rows found written in place (images included), the others left alone
        destination = np.full((len(needed) + 4, 3), -1.0)
        rows = np.arange(len(needed))[::-1] + 4
        found, written = halo(needed, positions, ids[mine], values, into=([destination], rows))
        assert written is destination and found[:-1].all() and not found[-1]
        np.testing.assert_allclose(destination[rows[:-1]],
                                   needed[:-1, None] * 2.5 * np.ones((1, 3)))
        assert (destination[:4] == -1).all() and (destination[rows[-1]] == -1).all()
        # a rank that asks for nothing (no foreign ghosts) takes part with into, too
        ask = slice(0, 0) if rank == 1 else slice(None)
        found, written = halo(needed[ask], positions[ask], ids[mine], values,
                              into=([destination], rows[ask]))
        assert written is destination and found.sum() == (0 if rank == 1 else len(needed) - 1)
        asked = comm.gather(int(ghost.sum()))  # one line: ranks' prints interleave
        if rank == 0:
            print("ok", *asked, flush=True)

    try:
        main(MPI.COMM_WORLD)
    except BaseException:  # one rank's failure must not leave the others waiting
        traceback.print_exc()
        sys.stdout.flush()
        MPI.COMM_WORLD.Abort(1)
""")


@pytest.mark.parametrize("ranks", [2, 3])
def test_halo_answers_every_ghost_from_its_owner(tmp_path, ranks):
    script = tmp_path / "halo.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(["mpirun", "-np", str(ranks), "--oversubscribe", sys.executable,
                           str(script)], env=lammps_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(lines) == 1 and len(lines[0]) == 1 + ranks, proc.stdout[-3000:]
    assert all(int(n) > 100 for n in lines[0][1:])  # each rank asked for many ghosts
