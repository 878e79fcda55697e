"""GIIP distance, orientation search, clustering, diffusion map and Nystrom extension
(Hardin et al., Eqs. 1-19)."""

from __future__ import annotations

import numpy as np
import pytest

from insitu.frame import Frame
from insitu.giip import (
    GIIPModel,
    GIIPSettings,
    LAESet,
    cluster_diameter,
    cluster_diameters,
    diffusion_map,
    distance_matrix,
    extract_laes,
    fit_model,
    giip_distance,
    giip_inner,
    nystrom,
    random_rotation,
    redundancy,
    rotation_grid,
    self_inner,
)

S2 = GIIPSettings(dim=2, sigma=0.5, inner=1.3, outer=1.75, coarse_deg=10.0, n_starts=3)
S3 = GIIPSettings(dim=3, sigma=1.0, inner=3.0, outer=4.0, species="sign", coarse_deg=25.0)


def one(pos, w, ch=None) -> LAESet:
    pos = np.asarray(pos, float)
    n = len(pos)
    ch = np.zeros(n, np.int64) if ch is None else np.asarray(ch, np.int64)
    return LAESet(pos[None].copy(), np.asarray(w, float)[None].copy(), ch[None].copy(),
                  np.array([n]))


def shell(rng, n, dim, radius, jitter=0.0):
    p = rng.normal(size=(n, dim))
    p *= radius / np.linalg.norm(p, axis=1)[:, None]
    return p + jitter * rng.normal(size=p.shape)


@pytest.mark.parametrize("settings,n,radius", [(S2, 6, 1.12), (S3, 13, 2.8)])
def test_distance_to_itself_is_zero(settings, n, radius):
    rng = np.random.default_rng(3)
    pos = shell(rng, n, settings.dim, radius, 0.1)
    w = np.where(rng.random(n) < 0.5, 1.0, -1.0) if settings.species == "sign" else np.ones(n)
    a = one(pos, w)
    assert giip_distance(a, 0, a, 0, settings) < 1e-5
    assert giip_distance(a, 0, a, 0, settings, rotate=False) < 1e-6


@pytest.mark.parametrize("settings,n,radius", [(S2, 6, 1.12), (S3, 13, 2.8)])
def test_one_atom_removed_is_one_atom_of_difference(settings, n, radius):
    rng = np.random.default_rng(4)
    pos = shell(rng, n, settings.dim, radius, 0.05)
    a, b = one(pos, np.ones(n)), one(pos[1:], np.ones(n - 1))
    assert giip_distance(a, 0, b, 0, settings, rotate=False) == pytest.approx(1.0, abs=1e-9)
    d = giip_distance(a, 0, b, 0, settings)
    assert 0.8 < d <= 1.0 + 1e-9


def test_species_swap_with_sign_weights_is_two_atoms():
    rng = np.random.default_rng(5)
    pos = shell(rng, 12, 3, 2.7, 0.05)
    w = np.where(np.arange(12) % 2 == 0, 1.0, -1.0)
    w2 = w.copy()
    w2[3] = -w2[3]
    a, b = one(pos, w), one(pos, w2)
    assert giip_distance(a, 0, b, 0, S3, rotate=False) == pytest.approx(2.0, abs=1e-9)
    assert 1.5 < giip_distance(a, 0, b, 0, S3) <= 2.0 + 1e-9
    # vector species: the swapped atom is missing from one channel and added to another
    sv = GIIPSettings(dim=3, sigma=1.0, species="vector")
    ch = (w < 0).astype(np.int64)
    ch2 = (w2 < 0).astype(np.int64)
    dv = giip_distance(one(pos, np.ones(12), ch), 0, one(pos, np.ones(12), ch2), 0, sv,
                       rotate=False)
    assert dv == pytest.approx(np.sqrt(2.0), abs=1e-9)


@pytest.mark.parametrize("settings,n,radius", [(S2, 7, 1.2), (S3, 14, 2.8)])
def test_rotated_and_inverted_copies_are_zero_after_minimisation(settings, n, radius):
    rng = np.random.default_rng(6)
    pos = shell(rng, n, settings.dim, radius, 0.15)
    w = np.where(rng.random(n) < 0.5, 1.0, -1.0) if settings.species == "sign" else np.ones(n)
    a = one(pos, w)
    for k in range(4):
        r = random_rotation(settings.dim, rng)
        if k % 2:
            r = r @ np.diag([-1.0] + [1.0] * (settings.dim - 1))  # rotoinversion
        perm = rng.permutation(n)
        b = one(pos[perm] @ r.T, w[perm])
        assert giip_distance(a, 0, b, 0, settings, rotate=False) > 0.3
        assert giip_distance(a, 0, b, 0, settings) < 1e-3
    chiral = GIIPSettings(**{**settings.to_dict(), "improper": False})
    mirror = one(pos * np.array([-1.0] + [1.0] * (settings.dim - 1)), w)
    assert giip_distance(a, 0, mirror, 0, chiral) > 0.05   # SO(d) keeps chirality
    assert giip_distance(a, 0, mirror, 0, settings) < 1e-3  # O(d) does not


@pytest.mark.parametrize("dim", [2, 3])
def test_analytic_inner_product_equals_numerical_integration(dim):
    rng = np.random.default_rng(7)
    sigma = 0.6
    pa, pb = rng.uniform(-1, 1, (4, dim)), rng.uniform(-1, 1, (3, dim))
    wa, wb = rng.uniform(-1, 1, 4), rng.uniform(0.2, 1, 3)
    h = 0.06 if dim == 2 else 0.1
    axis = np.arange(-4.5, 4.5 + h / 2, h)
    grid = np.stack(np.meshgrid(*([axis] * dim), indexing="ij"), -1).reshape(-1, dim)

    def density(p, w):  # Eq. 4 with the unit-norm Gaussians of Eq. 3 in `dim` dimensions
        norm = np.pi ** (-dim / 4) * sigma ** (-dim / 2)
        d2 = ((grid[:, None, :] - p[None]) ** 2).sum(-1)
        return (w[None] * norm * np.exp(-d2 / (2 * sigma ** 2))).sum(1)

    ra, rb = density(pa, wa), density(pb, wb)
    numeric = (ra * rb).sum() * h ** dim                       # Eq. 1
    assert giip_inner(pa, wa, pb, wb, sigma) == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    assert giip_inner(pa, wa, pa, wa, sigma) == pytest.approx((ra * ra).sum() * h ** dim,
                                                              rel=1e-6)
    norm_g = (density(np.zeros((1, dim)), np.ones(1)) ** 2).sum() * h ** dim
    assert norm_g == pytest.approx(1.0, rel=1e-6)            # Eq. 3: unit norm
    # the numba kernels: <X, X> and the distance without rotation (Eqs. 6-9, 13)
    st = GIIPSettings(dim=dim, sigma=sigma)
    a, b = one(pa, wa), one(pb, wb)
    assert self_inner(a, st)[0] == pytest.approx((ra * ra).sum() * h ** dim, rel=1e-6)
    d2 = ((ra - rb) ** 2).sum() * h ** dim                     # Eq. 6
    assert giip_distance(a, 0, b, 0, st, rotate=False) ** 2 == pytest.approx(d2, rel=1e-6)
    if dim == 2:   # a one-rotation (identity) "search": the kernel's cross term
        ident = GIIPSettings(**{**st.to_dict(), "max_iter": 0, "coarse_deg": 360.0,
                                "n_starts": 1, "improper": False})
        assert distance_matrix(a, b, ident)[0, 0] ** 2 == pytest.approx(d2, rel=1e-6)


def test_refined_search_not_worse_than_one_degree_grid_2d():
    rng = np.random.default_rng(8)
    fine = GIIPSettings(**{**S2.to_dict(), "coarse_deg": 1.0, "max_iter": 0, "n_starts": 1})
    for _ in range(20):
        a = one(shell(rng, 6, 2, 1.12, 0.12), np.ones(6))
        b = one(shell(rng, 6, 2, 1.12, 0.12), np.ones(6))
        assert giip_distance(a, 0, b, 0, S2) <= giip_distance(a, 0, b, 0, fine) + 1e-9


def test_rotation_grids():
    g3 = rotation_grid(3, 25.0)
    assert np.allclose(np.einsum("nij,nkj->nik", g3, g3), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(g3), 1.0)
    assert np.allclose(g3[0], np.eye(3))
    # covering: random rotations are within ~the spacing of some grid rotation
    rng = np.random.default_rng(9)
    nearest = []
    for _ in range(300):
        r = random_rotation(3, rng)
        cos = (np.einsum("nij,ij->n", g3, r) - 1) / 2
        nearest.append(np.degrees(np.arccos(np.clip(cos.max(), -1, 1))))
    assert np.median(nearest) < 0.9 * 25.0 and max(nearest) < 1.45 * 25.0
    assert len(rotation_grid(2, 1.0)) == 360


def hex_frame(n=12, a=2 ** (1 / 6)):
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="xy")
    pos = np.column_stack([(a * (i + 0.5 * (j % 2))).ravel(),
                           (a * np.sqrt(3) / 2 * j).ravel(), np.zeros(n * n)])
    cell = np.diag([n * a, n * a * np.sqrt(3) / 2, 1.0])
    return Frame(pos, cell, [True, True, True], np.ones(n * n, np.int64))


def test_extract_laes_coordination_and_identical_crystal_environments():
    f = hex_frame()
    laes = extract_laes(f, np.arange(len(f)), S2)
    assert np.allclose(laes.weight_sums(), 6.0)      # periodic in x, y; z images dropped
    d = distance_matrix(laes.subset(np.arange(10)), settings=S2)
    assert d.max() < 1e-4
    fcc = Frame(np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]]) * 3.6,
                np.eye(3) * 3.6, [True] * 3, [1, 2, 2, 2])
    s = GIIPSettings(dim=3, inner=2.6, outer=3.0, species="sign")
    lae = extract_laes(fcc, np.arange(4), s)
    assert lae.counts.tolist() == [12] * 4
    # type-1 centre: 12 type-2 neighbours (-1); type-2 centres: 4 of type 1, 8 of type 2
    assert np.allclose(lae.weight_sums(), [-12.0, -4.0, -4.0, -4.0])


def test_distance_matrix_parallel_equals_serial_and_is_symmetric():
    rng = np.random.default_rng(10)
    n = 40
    pos = np.stack([shell(rng, 6, 2, 1.12, 0.1) for _ in range(n)])
    laes = LAESet(pos, np.ones((n, 6)), np.zeros((n, 6), np.int64), np.full(n, 6))
    d1 = distance_matrix(laes, settings=S2, chunk=7)
    d2 = distance_matrix(laes, settings=S2, chunk=7, processes=2)
    assert np.allclose(d1, d2)
    assert np.allclose(d1, d1.T) and np.all(np.diag(d1) == 0)
    cross = distance_matrix(laes.subset(np.arange(5)), laes, S2)
    assert np.allclose(cross, d1[:5], atol=1e-6)


def test_clusters_respect_the_diameter():
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.normal(c, 0.3, (30, 2)) for c in ((0, 0), (3, 0), (0, 3))])
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    for diameter in (0.5, 1.0, 2.5):
        labels = cluster_diameter(d, diameter)
        assert cluster_diameters(d, labels).max() <= diameter
        assert np.bincount(labels).tolist() == sorted(np.bincount(labels), reverse=True)
    assert len(set(cluster_diameter(d, 4.0).tolist())) <= 4
    assert len(set(cluster_diameter(d, 0.5).tolist())) > 3


def test_diffusion_map_finds_the_line_and_nystrom_reproduces_training_points():
    rng = np.random.default_rng(12)
    t = np.sort(rng.uniform(0, 1, 150))
    x = np.column_stack([np.cos(3 * t), np.sin(3 * t)]) * 2   # an arc: 1D manifold
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    dmap = diffusion_map(d, eps=0.3, n_coords=5)
    assert abs(np.corrcoef(dmap.coordinates[:, 0], t)[0, 1]) > 0.97
    assert np.allclose(nystrom(dmap, d), dmap.coordinates, atol=1e-8)
    # a new point between two training points lands between their coordinates
    mid = 0.5 * (x[70] + x[71])
    new = nystrom(dmap, np.sqrt(((x - mid) ** 2).sum(-1))[None])[0, 0]
    lo, hi = sorted(dmap.coordinates[70:72, 0])
    assert lo - 1e-3 <= new <= hi + 1e-3
    r2 = redundancy(dmap.coordinates)
    assert r2[1] > 0.8   # the second coordinate of a line is a harmonic of the first


def test_model_roundtrip_and_projection(tmp_path):
    rng = np.random.default_rng(13)
    n = 30
    pos = np.stack([shell(rng, 6, 2, 1.12, 0.15) for _ in range(n)])
    w = np.ones((n, 6))
    w[:10, 5] = 0.0                                      # ten LAEs with 5 neighbours
    laes = LAESet(pos, w, np.zeros((n, 6), np.int64), np.full(n, 6))
    model, d = fit_model(laes, S2, eps=1.0, diameter=1.0, n_coords=4)
    assert cluster_diameters(d, model.labels).max() <= 1.0
    path = model.save(tmp_path / "m.npz")
    back = GIIPModel.load(path)
    proj = back.project(laes.subset(np.arange(8)))
    assert np.allclose(proj.coords, model.dmap.coordinates[:8], atol=1e-4)
    assert np.array_equal(proj.cluster, model.labels[:8])
    assert np.allclose(proj.nearest, 0.0, atol=1e-4)
    assert back.settings == S2


def test_linear_r2_against_the_definition():
    """r^2 = 1 - SS_res / SS_tot: 1 for an exact line, (signal variance) / (total) with
    independent noise, computed here from np.polyfit."""
    from insitu.giip import linear_r2

    rng = np.random.default_rng(3)
    x = rng.normal(size=500)
    assert linear_r2(x, 2.0 - 3.0 * x) == pytest.approx(1.0)
    y = x + rng.normal(size=500)
    fit = np.polyval(np.polyfit(x, y, 1), x)
    expected = 1 - np.sum((y - fit) ** 2) / np.sum((y - y.mean()) ** 2)
    assert linear_r2(x, y) == pytest.approx(expected, rel=1e-10)
    assert 0.35 < linear_r2(x, y) < 0.65


def test_first_diffusion_coordinate_orders_coordination_when_defects_are_present():
    """The paper's 2D result in miniature: strained hexagonal environments (6 neighbours,
    +-3 % dilatation, thermal noise) and vacancy neighbours (one or two of the six
    removed). With eps = 1 atom the first diffusion coordinate is the coordination number
    (one atom of difference per missing neighbour dwarfs the strain); without the
    defects it is the dilatation."""
    from insitu.giip import linear_r2

    rng = np.random.default_rng(21)
    angles = np.arange(6) * np.pi / 3
    hexagon = 2 ** (1 / 6) * np.column_stack([np.cos(angles), np.sin(angles)])
    n6, n5, n4 = 70, 20, 10
    n = n6 + n5 + n4
    strain = rng.uniform(-0.03, 0.03, n)
    pos = np.stack([hexagon * (1 + s) + 0.02 * rng.normal(size=(6, 2)) for s in strain])
    w = np.ones((n, 6))
    w[n6:, 0] = 0.0                                       # 5 neighbours
    w[n6 + n5:, 3] = 0.0                                  # 4 neighbours
    laes = LAESet(pos, w, np.zeros((n, 6), np.int64), np.full(n, 6))
    coordination = w.sum(axis=1)
    model, d = fit_model(laes, S2, eps=1.0, diameter=1.0, n_coords=4)
    assert linear_r2(model.dmap.coordinates[:, 0], coordination) > 0.9
    assert model.n_clusters >= 3                          # CN 6, 5, 4 never share a cluster
    perfect = laes.subset(np.arange(n6))
    model6, _ = fit_model(perfect, S2, eps=1.0, diameter=1.0, n_coords=4)
    assert linear_r2(model6.dmap.coordinates[:, 0], strain[:n6]) > 0.8
