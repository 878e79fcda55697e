"""Monte Carlo dropout (ARISE, Leitherer et al., Supp. Methods "Bayesian deep learning"):
dropout stays on at inference, T stochastic passes of the network's head are averaged
(Supp. Eq. 4) and their spread gives the mutual information between the prediction and
the weights (Supp. Eq. 5), the model's epistemic uncertainty.

Cheap: the dropout layers of the shipped networks sit in the dense head only, so the
exported graph computes the convolutional (or first dense) features once per atom and
applies the head to (atoms x T) rows in one onnxruntime call (graph contract in
:mod:`insitu.training.export`). The dropout masks are fed as an input, made here from a
counter-based hash (splitmix64) of (model seed, global atom id, MD step, pass, unit):
no random-number generator state, so the masks of an atom do not depend on the MPI rank
it lives on, on the batch it lands in, or on the order of the atoms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["McDropout", "dropout_masks", "mutual_information", "pass_statistics",
           "entropy_bits", "MASK_INPUT", "PASS_OUTPUT", "atom_step_key", "fill_mask_row",
           "mean_and_mi", "mask_parameters"]

MASK_INPUT = "dropout_mask"
"""Graph input: (atoms | 1, passes | 1, units) float32 multipliers of the head's dropout
units (0 or 1 / (1 - rate)); its default (an initializer of ones) is dropout off."""
PASS_OUTPUT = "pass_probabilities"
"""Graph output: (atoms, passes, K) float32 class probabilities of every pass."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _splitmix64(x):
    """splitmix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mix."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _row_one_bit(key, scales, row):
    """Rate 0.5 everywhere: unit u is kept when bit u % 64 of hash word u // 64 is set."""
    n = len(row)
    full = n // 64
    one = np.uint64(1)
    for w in range(full + (1 if full * 64 < n else 0)):
        h = _splitmix64(key + np.uint64(w) * _GOLDEN)
        base = w * 64
        if w < full:  # a constant trip count: numba vectorises it
            for lane in range(64):
                row[base + lane] = scales[base + lane] * np.float32((h >> np.uint64(lane)) & one)
        else:
            for u in range(base, n):
                row[u] = scales[u] * np.float32((h >> np.uint64(u - base)) & one)


@njit(cache=True, inline="always")
def _row_16_bits(key, thresholds, scales, row):
    """Any rates: unit u is kept when lane u % 4 (16 bits) of word u // 4 is >= its
    threshold round(rate * 2^16)."""
    n = len(row)
    lane_mask = np.uint64(0xFFFF)
    for w in range((n + 3) // 4):
        h = _splitmix64(key + np.uint64(w) * _GOLDEN)
        for lane in range(4):
            u = 4 * w + lane
            if u < n:
                value = (h >> np.uint64(16 * lane)) & lane_mask
                row[u] = scales[u] * np.float32(value >= thresholds[u])


@njit(cache=True, inline="always")
def atom_step_key(seed, atom_id, step):
    """Hash key of (model seed, global atom id, MD step), uint64 each: the start of the
    splitmix64 chain of that atom's masks at that step."""
    key_atom = _splitmix64(_splitmix64(np.uint64(seed)) ^ np.uint64(atom_id))
    return _splitmix64(key_atom ^ np.uint64(step))


@njit(cache=True, inline="always")
def fill_mask_row(key_step, t, one_bit, thresholds, scales, row):
    """row[:] = the mask of pass ``t`` from the atom's :func:`atom_step_key` (one hash bit
    per unit when every rate is 0.5, else 16-bit lanes against ``thresholds``)."""
    key = _splitmix64(key_step ^ np.uint64(t))
    if one_bit:
        _row_one_bit(key, scales, row)
    else:
        _row_16_bits(key, thresholds, scales, row)


@njit(cache=True)
def _fill_masks(ids, step, seed, one_bit, thresholds, scales, out):
    """out[i, t, :] from the hash key of (seed, ids[i], step, t) (splitmix64 chain)."""
    n, n_passes, _ = out.shape
    for i in range(n):
        key_step = atom_step_key(np.uint64(seed), ids[i], np.uint64(step))
        for t in range(n_passes):
            fill_mask_row(key_step, t, one_bit, thresholds, scales, out[i, t])


@dataclass(frozen=True)
class McDropout:
    """The dropout layers of a model's head, as stored in its metadata
    (``insitu.mc_dropout``): ``units`` and ``rates`` per layer in the order of the mask
    input, the default number of passes ``passes``, the mask ``seed`` and the MI threshold
    ``mi_threshold`` (bits) chosen on validation data."""

    units: tuple
    rates: tuple
    passes: int
    seed: int
    mi_threshold: float

    @classmethod
    def from_metadata(cls, meta: dict) -> McDropout:
        """Build from the ``mc_dropout`` metadata object; ValueError if malformed."""
        units = tuple(int(u) for u in meta["units"])
        rates = tuple(float(r) for r in meta["rates"])
        if not units or len(units) != len(rates) or min(units) < 1:
            raise ValueError(f"units {units} and rates {rates} must be non-empty, of equal "
                             "length, units >= 1")
        if not all(0.0 < r < 1.0 for r in rates):
            raise ValueError(f"dropout rates must be in (0, 1), got {rates}")
        passes, seed = int(meta["passes"]), int(meta["seed"])
        mi_threshold = float(meta["mi_threshold"])
        if passes < 1 or not 0 <= seed < 2 ** 63:
            raise ValueError(f"passes must be >= 1 and seed in [0, 2^63), got {passes}, {seed}")
        if not (np.isfinite(mi_threshold) and mi_threshold >= 0.0):
            raise ValueError(f"mi_threshold must be a number of bits >= 0, got {mi_threshold}")
        return cls(units, rates, passes, seed, mi_threshold)

    def to_metadata(self) -> dict:
        return {"units": list(self.units), "rates": list(self.rates), "passes": self.passes,
                "seed": self.seed, "mi_threshold": self.mi_threshold}

    @property
    def n_units(self) -> int:
        return int(sum(self.units))

    def masks(self, ids, step: int, n_passes: int, out: np.ndarray | None = None) -> np.ndarray:
        """(len(ids), n_passes, n_units) float32 masks: :func:`dropout_masks` with this
        model's layers and seed."""
        return dropout_masks(ids, step, n_passes, self.units, self.rates, self.seed, out)


def mask_parameters(units, rates) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per unit of the dropout layers (``units`` each, at ``rates``): the uint64 threshold
    of its 16-bit hash lane, its float32 scale 1 / (1 - rate), and whether every rate is
    0.5 (one hash bit per unit), as :func:`fill_mask_row` reads them."""
    thresholds = np.concatenate([np.full(int(u), min(round(float(r) * 2 ** 16), 2 ** 16 - 1))
                                 for u, r in zip(units, rates)]).astype(np.uint64)
    scales = np.concatenate([np.full(int(u), 1.0 / (1.0 - float(r)))
                             for u, r in zip(units, rates)]).astype(np.float32)
    return thresholds, scales, all(float(r) == 0.5 for r in rates)


def dropout_masks(ids, step: int, n_passes: int, units, rates, seed: int,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Inverted-dropout masks (N, n_passes, sum(units)) float32 for the atoms ``ids``
    (global ids) at MD step ``step``: unit u of layer l is 0 with probability rates[l]
    and 1 / (1 - rates[l]) otherwise, as torch's Dropout in training mode. Each value is a
    function of (seed, id, step, pass, unit) only: with every rate 0.5 (the paper CNN) one
    hash bit per unit; otherwise a unit is dropped when its 16-bit lane of the hash is
    below round(rate * 2^16) (the rate within 1e-5). ``out``: a C-contiguous float32 array
    of that shape to fill (reused buffers spare the page faults of fresh ones)."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    thresholds, scales, one_bit = mask_parameters(units, rates)
    shape = (len(ids), int(n_passes), len(scales))
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
    if out.size:
        _fill_masks(ids.view(np.uint64), np.int64(step), np.int64(seed), one_bit, thresholds,
                    scales, out)
    return out


def mutual_information(pass_probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mutual information, predictive entropy), both (N,) float64 in bits, of the
    per-pass probabilities p(y=c | x, w_t) of shape (N, T, K), ARISE Supp. Eq. 5:

        I[y, w | x] = H[(1/T) sum_t p_t] - (1/T) sum_t H[p_t],
        H[p] = -sum_c p_c log2 p_c   (0 log 0 = 0),

    the first term being the predictive entropy of the averaged probabilities (Supp.
    Eq. 4). I is clipped at 0 against rounding."""
    return pass_statistics(pass_probabilities)[1:]


def pass_statistics(pass_probabilities: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean probabilities (N, K) float32, mutual information (N,), predictive entropy
    (N,) float64 bits) of (N, T, K) per-pass probabilities in one sweep (Supp. Eqs. 4-5;
    sums in float64; see :func:`mutual_information`)."""
    p = np.asarray(pass_probabilities)
    if p.dtype not in (np.float32, np.float64):
        p = p.astype(np.float64)
    p = np.ascontiguousarray(p)
    n, _, k = p.shape
    mean = np.empty((n, k), np.float32)
    mi = np.empty(n)
    entropy = np.empty(n)
    if p.size:
        _pass_statistics(p, mean, mi, entropy)
    return mean, mi, entropy


@njit(cache=True, inline="always", error_model="numpy")
def mean_and_mi(acc, expected, n_passes, mean_row):
    """From the sums over T passes of an atom's probabilities (``acc``, (K,)) and of the
    passes' entropies (``expected``, nats): ``mean_row[:]`` = the mean probabilities
    (Supp. Eq. 4); returns (MI, predictive entropy) in bits (Supp. Eq. 5)."""
    inv_log2 = 1.0 / np.log(2.0)
    h = 0.0
    for c in range(acc.shape[0]):
        v = acc[c] / n_passes
        mean_row[c] = v
        if v > 0.0:
            h -= v * np.log(v)
    h *= inv_log2
    return max(h - expected * inv_log2 / n_passes, 0.0), h


@njit(cache=True, error_model="numpy")
def _pass_statistics(p, mean, mi, entropy):
    n, t, k = p.shape
    acc = np.zeros(k)
    for i in range(n):
        for c in range(k):
            acc[c] = 0.0
        expected = 0.0
        for s in range(t):
            for c in range(k):
                v = np.float64(p[i, s, c])
                acc[c] += v
                if v > 0.0:
                    expected -= v * np.log(v)
        mi[i], entropy[i] = mean_and_mi(acc, expected, t, mean[i])


def entropy_bits(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy -sum_c p_c log2 p_c over the last axis (0 log 0 = 0), float64."""
    p = np.asarray(probabilities, dtype=np.float64)
    plogp = np.zeros_like(p)
    pos = p > 0
    plogp[pos] = p[pos] * np.log2(p[pos])
    return -plogp.sum(axis=-1)
