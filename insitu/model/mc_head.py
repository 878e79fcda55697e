"""MC dropout with the head run by one numba kernel instead of onnxruntime.

The graph path (:meth:`insitu.model.Classifier.network_mc`) feeds onnxruntime a float32
mask per (atom, pass, unit) and reads back every pass's probabilities: for the small BOO
network that is ~170 MB of masks and masked activations per 16,000 atoms at T = 20, more
memory traffic than the network itself (and, in situ, the MD step after it runs slower
for the caches it emptied). When the head is one dense layer after the dropout
(``Dropout -> Linear -> Softmax``, the shipped MLP), the graph may expose the dropout's
input and that layer as outputs (:func:`insitu.training.head_outputs.expose_head`):
onnxruntime then runs the trunk once per atom and :func:`_pass_logits` the T passes atom
by atom, each pass's mask made by the same hash as
:func:`insitu.model.mc_dropout.dropout_masks` (bit-identical masks), and
:func:`_pass_reduce` turns the logits into ARISE Supp. Eqs. 4-5. The graph stays the
reference: at load the kernel must reproduce it on probe features
(:func:`load_linear_head`), else the model is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .mc_dropout import atom_step_key, fill_mask_row, mask_parameters, mean_and_mi
from .onnx_format import ModelError

__all__ = ["LinearHead", "load_linear_head", "HEAD_INPUT", "HEAD_WEIGHT", "HEAD_BIAS"]

HEAD_INPUT = "mc_head_input"
"""Graph output: (atoms, units) float32, the activations the head's dropout multiplies."""
HEAD_WEIGHT = "mc_head_weight"
"""Graph output: (K, units) float32, the weight of the head's dense layer."""
HEAD_BIAS = "mc_head_bias"
"""Graph output: (K,) float32, its bias."""

PROBE_ATOMS = 64
PROBE_PASSES = 5
PROBE_TOLERANCE = 1e-4  # float32 sums in another order differ by ~1e-7


_FAST = {"nsz", "arcp", "contract", "reassoc"}  # no NaN/inf assumptions


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _pass_logits(h, ids, step, seed, one_bit, thresholds, scales, weight, bias, shifted):
    """shifted[i, t] = z - max_c z, z = weight @ (mask_t * h_i) + bias: the logits of
    atom i's pass t, mask_t as :func:`insitu.model.mc_dropout.dropout_masks` makes it for
    (seed, ids[i], step, t) (the same hash chain: ``atom_step_key``, ``fill_mask_row``)."""
    n, units = h.shape
    n_passes, k = shifted.shape[1], shifted.shape[2]
    scaled = np.empty((k, units), np.float32)  # weight * h_i: one dot product per class
    row = np.empty(units, np.float32)
    for i in range(n):
        key_step = atom_step_key(np.uint64(seed), ids[i], np.uint64(step))
        for c in range(k):
            for u in range(units):
                scaled[c, u] = weight[c, u] * h[i, u]
        for t in range(n_passes):
            fill_mask_row(key_step, t, one_bit, thresholds, scales, row)
            top = np.float32(-np.inf)
            for c in range(k):
                s = np.float32(0.0)
                for u in range(units):
                    s += scaled[c, u] * row[u]
                shifted[i, t, c] = s + bias[c]
                top = max(top, shifted[i, t, c])
            for c in range(k):
                shifted[i, t, c] -= top


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _pass_reduce(shifted, exp_shifted, log_total, inv_total, mean, mi, entropy):
    """Supp. Eqs. 4-5 from each pass's shifted logits, their exponentials and the log and
    the inverse of their sum: p_t = exp / sum, log p_t = shifted - log sum; mean, entropy
    and MI in bits."""
    n, n_passes, k = shifted.shape
    acc = np.zeros(k)
    for i in range(n):
        for c in range(k):
            acc[c] = 0.0
        expected = 0.0  # sum over the passes of their entropies, in nats
        for t in range(n_passes):
            inv = np.float64(inv_total[i, t])
            for c in range(k):
                p = exp_shifted[i, t, c] * inv
                acc[c] += p
                expected -= p * np.float64(shifted[i, t, c] - log_total[i, t])
        mi[i], entropy[i] = mean_and_mi(acc, expected, n_passes, mean[i])


@dataclass(frozen=True)
class LinearHead:
    """The dense layer (``weight`` (K, units), ``bias`` (K,), float32) behind a model's
    dropout, with the mask parameters of its :class:`~insitu.model.mc_dropout.McDropout`."""

    weight: np.ndarray
    bias: np.ndarray
    thresholds: np.ndarray
    scales: np.ndarray
    one_bit: bool
    seed: int

    def statistics(self, head_input: np.ndarray, ids, step: int, n_passes: int,
                   mean: np.ndarray, mi: np.ndarray, entropy: np.ndarray) -> None:
        """Fill ``mean`` (n, K) float32 and ``mi``, ``entropy`` (n,) float64 (bits) of the
        atoms ``ids`` whose dropout input is ``head_input`` (n, units), at MD ``step``."""
        n = len(head_input)
        shifted = np.empty((n, int(n_passes), len(self.bias)), np.float32)
        _pass_logits(np.ascontiguousarray(head_input, np.float32),
                     np.ascontiguousarray(ids, np.int64).view(np.uint64), np.int64(step),
                     np.int64(self.seed), self.one_bit, self.thresholds, self.scales,
                     self.weight, self.bias, shifted)
        # the exponentials, logs and inverses by NumPy's SIMD loops, not one call per value
        exp_shifted = np.exp(shifted)
        k = len(self.bias)  # the sums over the K classes as one matrix-vector product
        total = (exp_shifted.reshape(-1, k) @ np.ones(k, np.float32)).reshape(n, int(n_passes))
        _pass_reduce(shifted, exp_shifted, np.log(total), np.reciprocal(total), mean, mi,
                     entropy)

    def predict(self, classifier, features: np.ndarray, ids, step: int, n_passes: int,
                novelty_out: np.ndarray | None) -> tuple:
        """``classifier.network_mc`` through this kernel: the trunk (and the novelty) by
        onnxruntime batch by batch, the passes here."""
        n = len(features)
        mean = np.empty((n, len(self.bias)), np.float32)
        mi, entropy = np.empty(n), np.empty(n)
        fetch = classifier._fetch(HEAD_INPUT, novelty_out)
        rows = classifier._rows_per_call()
        for s in range(0, n, rows):
            chunk = np.ascontiguousarray(features[s:s + rows], dtype=np.float32)
            res = classifier.session.run(fetch, {classifier.input_name: chunk})
            if len(res) > 1:
                novelty_out[s:s + len(chunk)] = res[1]
            e = s + len(chunk)
            self.statistics(res[0], ids[s:e], step, n_passes, mean[s:e], mi[s:e], entropy[s:e])
        return mean, mi, entropy


def load_linear_head(classifier) -> LinearHead | None:
    """The exposed head of ``classifier``'s graph (None when the graph exposes none),
    checked against the graph path on :data:`PROBE_ATOMS` probe atoms; ModelError when the
    outputs are malformed or the kernel does not reproduce the graph."""
    session, mc, path = classifier.session, classifier.mc, classifier.path
    outputs = {o.name for o in session.get_outputs()}
    if mc is None or HEAD_INPUT not in outputs:
        return None
    if not {HEAD_WEIGHT, HEAD_BIAS} <= outputs:
        raise ModelError(f"{path}: graph output {HEAD_INPUT} without {HEAD_WEIGHT} and "
                         f"{HEAD_BIAS}; re-export the model")
    probe = np.random.default_rng(0).random((PROBE_ATOMS,) + classifier.feature_shape,
                                            dtype=np.float32)
    weight, bias = session.run([HEAD_WEIGHT, HEAD_BIAS], {classifier.input_name: probe[:1]})
    weight = np.ascontiguousarray(weight, np.float32)
    bias = np.ascontiguousarray(bias, np.float32).reshape(-1)
    k = len(classifier.classes)
    if weight.shape != (k, mc.n_units) or bias.shape != (k,):
        raise ModelError(f"{path}: exposed head of shape {weight.shape} + {bias.shape}, not "
                         f"({k}, {mc.n_units}) + ({k},); re-export the model")
    head = LinearHead(weight, bias, *mask_parameters(mc.units, mc.rates), mc.seed)
    ids = np.arange(1, PROBE_ATOMS + 1, dtype=np.int64)
    expected = classifier.network_mc(probe, ids, 1, PROBE_PASSES, None)  # the graph path
    got = (np.empty((PROBE_ATOMS, k), np.float32), np.empty(PROBE_ATOMS), np.empty(PROBE_ATOMS))
    head.statistics(session.run([HEAD_INPUT], {classifier.input_name: probe})[0], ids, 1,
                    PROBE_PASSES, *got)
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(got, expected))
    if not worst <= PROBE_TOLERANCE:
        raise ModelError(f"{path}: the exposed MC-dropout head disagrees with the graph by "
                         f"{worst:.3g} on probe atoms; re-export the model")
    return head
