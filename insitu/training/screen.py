"""Put a light screening network in front of a trained model (:mod:`insitu.model.screen`)
and choose, on validation data, the mean probability from which the screen's label stands.

The rule: run the model alone and the screen on the validation atoms (MC dropout at the
model's default T, masks seeded by the dataset row, as :mod:`.mc_calibration` does); rank
the atoms by the screen's mean probability (those its novelty flags never qualify); take
the lowest probability, not below ``MIN_PROBABILITY``, at which the cascade's accuracy
stays within ``max_loss`` of the model's alone. Every validation atom counts once (no
consensus: the stored features are single environments). Held-out elements are not used
for the choice; the near-transition card reports them with the screen on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from insitu.model import Classifier
from insitu.model.onnx_format import file_sha256
from insitu.model.screen import SCREEN_METADATA, ScreenRule

__all__ = ["MAX_SCREEN_LOSS", "MIN_PROBABILITY", "choose_min_probability", "attach_screen"]

MAX_SCREEN_LOSS = 0.001
"""Validation accuracy the screen may cost against the model alone: 0.1 points."""
MIN_PROBABILITY = 0.99
"""Lowest gate: the screen's label stands only where it is nearly certain (its predictive
entropy, and so its MI, then below 0.1 bit)."""
CALIBRATION_METADATA = "screen_calibration"


def choose_min_probability(screen_p: np.ndarray, screen_right: np.ndarray,
                           model_right: np.ndarray, eligible: np.ndarray,
                           max_loss: float = MAX_SCREEN_LOSS,
                           floor: float = MIN_PROBABILITY) -> tuple[float, float, float]:
    """(gate, cascade accuracy, fraction screened): the lowest screen probability ``gate``
    >= ``floor`` such that labelling the ``eligible`` atoms with ``screen_p >= gate`` by the
    screen (right or not: ``screen_right``) and the rest by the model (``model_right``)
    keeps the accuracy at least ``mean(model_right) - max_loss``. Atoms of equal
    probability switch together."""
    p = np.where(eligible, screen_p, -np.inf)
    order = np.argsort(-p, kind="stable")
    p_sorted = p[order]
    n = len(p)
    base = float(np.mean(model_right))
    gain = np.cumsum(screen_right[order].astype(np.int64) - model_right[order].astype(np.int64))
    # candidate k: screen the first k + 1 atoms; only where the next atom's probability
    # differs (a tie cannot be split by a >= gate) and the gate is above the floor
    last = np.r_[p_sorted[1:] != p_sorted[:-1], True] & (p_sorted >= floor)
    ok = last & (base + gain / n >= base - max_loss - 1e-12)
    if not ok.any():
        return 1.0 + 1e-9, base, 0.0  # nothing qualifies: a gate no probability reaches
    k = int(np.flatnonzero(ok)[-1])
    return float(p_sorted[k]), float(base + gain[k] / n), (k + 1) / n


def attach_screen(model_path: str | Path, screen_path: str | Path, data: str | Path,
                  max_loss: float = MAX_SCREEN_LOSS) -> dict:
    """Calibrate ``screen_path`` in front of ``model_path`` on the validation split of the
    crystal dataset ``data``; copy the screen beside the model as ``<model>.screen.onnx``
    and write the rule (``insitu.screen``) and the calibration (``insitu.screen_calibration``)
    into the model's metadata. Returns the calibration; ValueError (nothing written) when
    no gate qualifies."""
    from .export import update_metadata
    from .mc_calibration import validation_mi, validation_split

    model_path, screen_path = Path(model_path), Path(screen_path)
    model = Classifier.load(model_path, screen=False)
    screen = Classifier.load(screen_path, screen=False)
    if screen.classes != model.classes or \
            screen.metadata["descriptor"] != model.metadata["descriptor"]:
        raise ValueError(f"{screen_path}: classes {screen.classes} / descriptor differ from "
                         f"those of {model_path}; a screen must read the model's features")
    val, x, labels = validation_split(data, model)
    ids = val + 1
    alone = validation_mi(model, x, ids)
    ahead = validation_mi(screen, x, ids, n_passes=model.mc_passes if screen.mc else 1)
    described, screen_p = alone["described"], ahead["mean_probabilities"]
    eligible = described.copy()
    if ahead["novelty"] is not None:
        eligible &= ahead["novelty"] <= screen.novelty_threshold
    model_right = (alone["mean_probabilities"].argmax(1) == labels) & described
    screen_right = (screen_p.argmax(1) == labels) & described
    gate, accuracy, fraction = choose_min_probability(screen_p.max(1), screen_right,
                                                      model_right, eligible, max_loss)
    if fraction == 0.0:
        raise ValueError(f"{screen_path}: no gate >= {MIN_PROBABILITY} keeps the validation "
                         f"accuracy within {100 * max_loss:g} points of {model_path.name} "
                         "alone (or the screen is never that sure): not attached")
    target = model_path.with_name(model_path.stem + ".screen.onnx")
    if screen_path.resolve() != target.resolve():
        shutil.copyfile(screen_path, target)
    rule = ScreenRule(target.name, file_sha256(target), gate)
    calibration = {"dataset": f"{data} (validation split)", "atoms": int(len(x)),
                   "passes": int(model.mc_passes), "max_loss": max_loss,
                   "floor": MIN_PROBABILITY, "model_accuracy": float(np.mean(model_right)),
                   "screen_accuracy": float(np.mean(screen_right)),
                   "cascade_accuracy": accuracy, "fraction_screened": fraction,
                   "screen_architecture": (screen.metadata.get("training") or {}).get("arch"),
                   "screen_novelty": screen.novelty_threshold is not None}
    update_metadata(model_path, {SCREEN_METADATA: rule.to_metadata(),
                                 CALIBRATION_METADATA: calibration})
    return calibration


def screen_text(model: str | Path) -> str:
    """One paragraph on a model's screen for its card ('' without one)."""
    clf = Classifier.load(model, mc_passes=1, screen=False)
    meta = clf.metadata.get(SCREEN_METADATA)
    if not meta:
        return ""
    rule = ScreenRule.from_metadata(meta)
    cal = clf.metadata.get(CALIBRATION_METADATA) or {}
    arch = cal.get("screen_architecture") or "a light network"
    how = (f" Chosen on {cal['atoms']} validation atoms ({cal['dataset']}, T = "
           f"{cal['passes']}): the lowest mean probability >= {cal['floor']} at which the "
           f"cascade loses at most {100 * cal['max_loss']:g} points against this network "
           f"alone ({100 * cal['model_accuracy']:.2f} % alone, screen alone "
           f"{100 * cal['screen_accuracy']:.2f} %, cascade {100 * cal['cascade_accuracy']:.2f} "
           f"%, {100 * cal['fraction_screened']:.1f} % of the validation atoms settled by the "
           f"screen)." if cal else "")
    return (f"Screen (`insitu.model.screen`): `{rule.model}` ({arch}, same features) labels "
            f"every atom first; its label stands where its mean probability is at least "
            f"{rule.min_probability:.6g}"
            + (" and its feature-space novelty is below its own threshold"
               if cal.get("screen_novelty") else "")
            + "; every other atom is labelled by this network as without the screen." + how
            + " `screen=no` (attach option), `Classifier.load(..., screen=False)` or "
              "`insitu classify --no-screen` run this network on every atom.")
