"""Analyses sharing one neighbour search per step (insitu.coupling.step_neighbors) under
real LAMMPS and mpirun: two models attached to the same job give, atom for atom and bit
for bit, what each gives attached alone, and the second one reuses the first one's search."""

from __future__ import annotations

import numpy as np
import pytest
from lammps_helpers import run_lammps

from insitu.descriptors import Steinhardt
from insitu.io.lammps_dump import iter_lammps_dump
from insitu.testing import NI_LATTICE, lattice, thermal, thermal_ni, write_data

SYSTEM = """
units metal
read_data {data}
mass 1 58.69
pair_style eam
pair_coeff 1 1 Ni_u3.eam
neighbor 2.0 bin
neigh_modify delay 0 every 1 check yes
velocity all create 2400 7 loop geom
fix md all nvt temp 1200 1200 0.1
comm_modify cutoff 10.5
"""

ATTACH = """
fix {id}_atoms all property/atom i_{id}_class d_{id}_conf
python insitu_attach input 6 SELF {id} {model} every={every} log=none batch=97 &
    format psssss here "from insitu.coupling import insitu_attach"
python insitu_attach invoke
fix {id} all python/invoke {every} end_of_step insitu_{id}
"""

REPORT = """
python shared_hits input 1 SELF format p here \"\"\"
def shared_hits(ptr):
    from lammps import lammps
    from mpi4py import MPI
    from insitu.coupling.step_neighbors import step_neighbors
    # gathered on rank 0 and written to a file: mpirun's forwarding of stdout can drop or
    # interleave lines written at the end of a run
    cache = step_neighbors(lammps(ptr=ptr))
    hits = MPI.COMM_WORLD.gather((cache.hits, cache.shared_searches))
    if hits is not None:
        with open("shared_hits.txt", "w") as f:
            f.write(" ".join(f"{h} {s}" for h, s in hits))
\"\"\"
python shared_hits invoke
"""


def run(tmp_path, name, analyses):
    """One 2-rank run with ``analyses`` [(id, model, every)]; returns the per-atom labels
    and confidences of each analysis at each dumped step, and LAMMPS's output."""
    d = tmp_path / name
    d.mkdir()
    data = write_data(d / "fcc.data", thermal(lattice("fcc", NI_LATTICE, 5), 0.1, seed=7))
    text = SYSTEM.format(data=data)
    for aid, model, every in analyses:
        text += ATTACH.format(id=aid, model=model, every=every)
    cols = " ".join(f"i_{a}_class d_{a}_conf" for a, _, _ in analyses)
    text += (f"dump d all custom 10 labels.dump id type x y z {cols}\n"
             "dump_modify d sort id format float %.17g\nthermo 10\nrun 20\n" + REPORT)
    proc = run_lammps(text, d, nprocs=2, timeout=300)
    frames = {f.step: f for f in iter_lammps_dump(d / "labels.dump") if f.step > 0}
    out = {a: {s: (f.ids, f.info["columns"][f"i_{a}_class"].astype(int),
                   f.info["columns"][f"d_{a}_conf"]) for s, f in frames.items()}
           for a, _, _ in analyses}
    return out, shared_counts(d, proc)


def shared_counts(d, proc) -> list[tuple[int, int]]:
    """(cache hits, shared searches built) per rank, as REPORT wrote them."""
    report = d / "shared_hits.txt"
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    values = [int(v) for v in report.read_text().split()]
    return list(zip(values[0::2], values[1::2]))


@pytest.fixture(scope="module")
def qbar_model(tmp_path_factory, random_model):
    """A q-bar model: its descriptor reads the neighbours of ghost atoms too."""
    descriptor = Steinhardt(ls=(4, 6, 8), n_neighbors=12, search_cutoff=4.0, averaged=True)
    path = tmp_path_factory.mktemp("models") / "random-qbar.onnx"
    return random_model(path, descriptor, ["fcc", "bcc", "liquid"], "mlp", seed=2,
                        threshold=0.5, features=descriptor.compute(thermal_ni(1200.0)))


def test_shared_search_gives_the_separate_results(tmp_path, nm_model, qbar_model):
    together, hits = run(tmp_path, "together", [("a", nm_model, 5), ("b", qbar_model, 10)])
    alone_a, hits_a = run(tmp_path, "alone_a", [("a", nm_model, 5)])
    alone_b, hits_b = run(tmp_path, "alone_b", [("b", qbar_model, 10)])
    # steps 10 and 20 have both analyses due: the second reuses the first's search
    assert hits == [(2, 2), (2, 2)], hits  # per rank: hits, shared searches built
    assert hits_a == [(0, 0), (0, 0)] and hits_b == [(0, 0), (0, 0)]
    for aid, alone in (("a", alone_a), ("b", alone_b)):
        assert sorted(together[aid]) == sorted(alone[aid]) == [10, 20]
        for step, (ids, labels, conf) in alone[aid].items():
            ids2, labels2, conf2 = together[aid][step]
            np.testing.assert_array_equal(ids2, ids)
            np.testing.assert_array_equal(labels2, labels)
            np.testing.assert_array_equal(conf2, conf)  # bit for bit (%.17g)
            assert len(np.unique(labels)) >= 2, "the test models should give varied labels"


def test_a_removed_analysis_leaves_the_next_one_alone(tmp_path, nm_model, qbar_model):
    """After ``unfix`` of one analysis, one attached later is due alone at its steps: it
    stops building shared searches for the removed one (never called again) once that one
    has missed a step of its own: one wasted search at most (step 15), not one per call
    (steps 15, 20, 25, 30)."""
    d = tmp_path / "unfix"
    d.mkdir()
    data = write_data(d / "fcc.data", thermal(lattice("fcc", NI_LATTICE, 5), 0.1, seed=7))
    text = (SYSTEM.format(data=data) + ATTACH.format(id="a", model=nm_model, every=5)
            + "run 10\nunfix a\nunfix insitu_a_thermo\n"
            + ATTACH.format(id="b", model=qbar_model, every=5)
            + "run 20\n" + REPORT)
    proc = run_lammps(text, d, nprocs=2, timeout=300)
    assert shared_counts(d, proc) == [(0, 1), (0, 1)]


REACH_REPORT = """
python reach_report input 1 SELF format p here \"\"\"
def reach_report(ptr):
    import numpy as np
    from lammps import lammps
    from mpi4py import MPI
    from insitu.coupling.rank_analysis import extract_points
    from insitu.coupling.step_neighbors import step_neighbors
    lmp = lammps(ptr=ptr)
    reader, = step_neighbors(lmp).analyses
    step = int(lmp.extract_global("ntimestep"))
    given, _ = reader.points(lmp, step)  # what the analysis gets at one of its steps
    every = extract_points(lmp)  # all of LAMMPS's ghosts
    n = every.n_centers
    ghosts = every.positions[n:]
    distance = np.min(np.linalg.norm(ghosts[:, None] - every.positions[None, :n], axis=2),
                      axis=1)
    # periodic images share an id: a ghost is told by its position
    needed = set(map(tuple, ghosts[distance <= reader.reach].tolist()))
    kept = given.positions[given.n_centers:]
    row = (reader.reach, len(ghosts), len(kept), int(needed <= set(map(tuple, kept.tolist()))),
           int(np.array_equal(given.ids[:n], every.ids[:n])))
    rows = MPI.COMM_WORLD.gather(row)
    if rows is not None:
        with open("reach.txt", "w") as f:
            f.write("\\n".join(" ".join(str(v) for v in r) for r in rows))
\"\"\"
python reach_report invoke
"""


def test_points_stop_at_the_analysis_reach(tmp_path, qbar_model):
    """In situ an analysis with a halo exchange gets its centres and only the ghosts
    within its search radius (4 A here) of them, not the whole ghost shell LAMMPS keeps
    (comm_modify cutoff 10.5): every ghost within the reach of a centre is there."""
    d = tmp_path / "reach"
    d.mkdir()
    data = write_data(d / "fcc.data", thermal(lattice("fcc", NI_LATTICE, 5), 0.1, seed=7))
    text = (SYSTEM.format(data=data) + ATTACH.format(id="b", model=qbar_model, every=10)
            + "run 20\n" + REACH_REPORT)
    proc = run_lammps(text, d, nprocs=2, timeout=300)
    report = d / "reach.txt"
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line.split() for line in report.read_text().splitlines()]
    assert len(rows) == 2
    for reach, n_ghosts, n_kept, complete, same_centres in rows:
        assert float(reach) == 4.0  # q-bar's search radius: its ghosts' q_lm come by halo
        assert complete == "1" and same_centres == "1"
        assert int(n_kept) < 0.5 * int(n_ghosts), (n_kept, n_ghosts)
