"""Descriptor-code fingerprint: which descriptor semantics produced a set of features.

Features stored in a dataset, a model trained on them and a card built from them are only
comparable when the same descriptor code computed them (the Steinhardt neighbour rule, for
one, changed after a model had been trained and its card kept the old numbers). The
fingerprint of a descriptor is

* its kind and parameters (``to_metadata()``);
* :data:`DESCRIPTOR_VERSION` of its kind: an integer bumped by hand whenever the meaning of
  the features changes;
* a numerical probe: the features of a fixed built-in structure (a 108-site fcc cell with
  deterministic displacements and 16 sites removed), reduced to 16 numbers (mean and
  standard deviation of 8 fixed projections of the per-atom features) and the number of
  undescribed (NaN) atoms. An edit that only makes the code faster leaves the probe within
  :data:`PROBE_RTOL`; a change of semantics moves it.

:func:`check_fingerprint` compares a stored fingerprint with the current code and raises
:class:`DescriptorMismatch` with the reason.
"""

from __future__ import annotations

import numpy as np

from ..frame import Frame

__all__ = ["DESCRIPTOR_VERSION", "PROBE_RTOL", "DescriptorMismatch", "probe_frame",
           "descriptor_fingerprint", "check_fingerprint"]

DESCRIPTOR_VERSION = {"neighbors_map": 1, "steinhardt": 2}
"""Semantic version per descriptor kind; bump it with any change of what the features mean
(steinhardt 2: atoms with >= 4 neighbours described, the rule the shipped models use)."""

PROBE_RTOL = 1e-4
"""Relative tolerance of the numerical probe (float32 vs float64 sums, reordered loops)."""


class DescriptorMismatch(ValueError):
    """Stored features (dataset, model) were computed by other descriptor code."""


def probe_frame() -> Frame:
    """The fixed probe structure: fcc, a = 4.05 A, 3x3x3 cells, every site displaced by a
    deterministic 0.12 A-scale pattern, every 7th site removed (92 atoms)."""
    base = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    cells = np.array([[i, j, k] for i in range(3) for j in range(3) for k in range(3)])
    frac = (cells[:, None, :] + base[None]).reshape(-1, 3) / 3.0
    a = 4.05 * 3
    n = len(frac)
    k = np.arange(n, dtype=np.float64)[:, None]
    disp = 0.12 * np.sin(k * np.array([[1.3, 2.7, 4.1]]) + np.array([[0.3, 1.1, 2.3]]))
    pos = frac * a + disp
    keep = np.arange(n) % 7 != 3
    pos = np.mod(pos[keep], a)
    return Frame(pos, np.eye(3) * a, np.array([True, True, True]),
                 np.ones(len(pos), dtype=np.int64), np.arange(1, len(pos) + 1))


def _probe_numbers(features: np.ndarray) -> list[float]:
    flat = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    nan_rows = ~np.isfinite(flat).all(axis=1)
    flat = flat[~nan_rows]
    d = flat.shape[1]
    proj = 1.0 + 0.5 * np.cos(np.outer(np.arange(1, d + 1), np.arange(1, 9)) * 0.7)
    z = flat @ proj / np.sqrt(d)
    nums = np.concatenate([z.mean(axis=0), z.std(axis=0)]) if len(z) else np.zeros(16)
    return [float(f"{v:.7g}") for v in nums] + [float(nan_rows.sum())]


def descriptor_fingerprint(descriptor) -> dict:
    """The fingerprint of ``descriptor`` under the current code (JSON-ready dict)."""
    meta = descriptor.to_metadata()
    return {"kind": meta["kind"], "params": meta,
            "version": DESCRIPTOR_VERSION.get(meta["kind"], 0),
            "probe": _probe_numbers(descriptor.compute(probe_frame()))}


def check_fingerprint(stored: dict | None, descriptor, what: str) -> None:
    """Raise :class:`DescriptorMismatch` unless ``stored`` (the fingerprint recorded with
    ``what``: a dataset, a model) is that of ``descriptor`` under the current code."""
    if not stored:
        raise DescriptorMismatch(
            f"{what} records no descriptor fingerprint: its features may come from older "
            "descriptor code; regenerate it (insitu train data / insitu train fit)")
    now = descriptor_fingerprint(descriptor)
    if stored.get("params") != now["params"]:
        raise DescriptorMismatch(f"{what} was computed with descriptor parameters "
                                 f"{stored.get('params')}, not {now['params']}")
    if stored.get("version") != now["version"]:
        raise DescriptorMismatch(
            f"{what} was computed by {now['kind']} descriptor code version "
            f"{stored.get('version')}; the current code is version {now['version']} "
            "(its features mean something else now): regenerate it")
    old, new = np.asarray(stored.get("probe", []), float), np.asarray(now["probe"], float)
    if old.shape != new.shape or not np.allclose(old, new, rtol=PROBE_RTOL,
                                                 atol=PROBE_RTOL * np.abs(new).max()):
        raise DescriptorMismatch(
            f"{what}: the current {now['kind']} code computes other features on the probe "
            f"structure than the code that made it (probe {old.tolist()[:4]}... vs "
            f"{new.tolist()[:4]}...): the descriptor's semantics changed; regenerate it")
