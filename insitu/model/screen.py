"""A screening network in front of a model: a cascade that spends the model's cost only
where it is needed.

Most atoms of an MD run are easy (a thermal crystal well below T_m, a hot liquid); the
paper CNN costs the same ~13 MFLOP on each of them as on a superheated crystal with missing
atoms. With a screen, a light network on the *same* features labels every atom first, and
an atom goes on to the model's own network unless the screen is sure of it: its mean class
probability (over the MC-dropout passes, ARISE Supp. Eq. 4) at least ``min_probability``
and, for a screen with a feature-space novelty output, its novelty below the screen's
threshold. Hard atoms (near a transition, at defects, unlike the training data) are thus
labelled by the model as without the screen; ``min_probability`` is chosen on validation
data so that the cascade loses at most a set accuracy against the model alone
(:mod:`insitu.training.screen`).

An atom settled by the screen gets the screen's mean probabilities, mutual information and
predictive entropy (its MC passes, masks hashed from the screen's seed), and no novelty of
the model (NaN: the model's network did not see it). With ``min_probability`` >= 0.99 its
predictive entropy, and so its MI, is below 0.1 bit: it is never ``unknown`` by MI.

The screen is a file beside the model, named with its sha256 in the model's metadata
(``insitu.screen``); ``screen=False`` in :meth:`insitu.model.Classifier.load` (``screen=no``
in situ, ``--no-screen`` on the command line) runs the model's network on every atom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .onnx_format import ModelError, file_sha256

__all__ = ["SCREEN_METADATA", "ScreenRule", "load_screen", "screened_predictions"]

SCREEN_METADATA = "screen"


@dataclass(frozen=True)
class ScreenRule:
    """The screen of a model as stored in its metadata: ``model`` (file name, in the
    model's folder), its ``sha256``, and ``min_probability``, the mean class probability
    from which the screen's label stands."""

    model: str
    sha256: str
    min_probability: float

    @classmethod
    def from_metadata(cls, meta: dict) -> ScreenRule:
        """Build from the ``screen`` metadata object; ValueError if malformed."""
        if not isinstance(meta, dict):
            raise ValueError("must be a JSON object")
        model, sha = meta.get("model"), meta.get("sha256")
        if not isinstance(model, str) or not model or "/" in model or "\\" in model:
            raise ValueError(f"model must be a file name in the model's folder, got {model!r}")
        if not isinstance(sha, str) or len(sha) != 64:
            raise ValueError(f"sha256 must be 64 hex digits, got {str(sha)[:80]!r}")
        p = meta.get("min_probability")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.5 < float(p) <= 1.0:
            raise ValueError(f"min_probability must be a number in (0.5, 1], got {p!r}")
        return cls(model, sha, float(p))

    def to_metadata(self) -> dict:
        return {"model": self.model, "sha256": self.sha256,
                "min_probability": self.min_probability}


def load_screen(model) -> tuple:
    """(screen :class:`~insitu.model.Classifier`, :class:`ScreenRule`) of ``model`` (a
    Classifier whose metadata names a screen): the file beside it, with the sha256, the
    classes and the descriptor the metadata promise; :class:`ModelError` with the way out
    otherwise."""
    from .classifier import Classifier

    try:
        rule = ScreenRule.from_metadata(model.metadata[SCREEN_METADATA])
    except ValueError as exc:
        raise ModelError(f"{model.path}: bad metadata insitu.{SCREEN_METADATA} ({exc})") \
            from None
    file = model.path.parent / rule.model
    off = ("or run the model's network on every atom: Classifier.load(..., screen=False), "
           "`screen=no` in insitu_attach, `--no-screen` in insitu classify")
    if not file.is_file():
        raise ModelError(f"{model.path}: its screening network {file} is missing; copy it "
                         f"beside the model ({off})")
    if file_sha256(file) != rule.sha256:
        raise ModelError(f"{model.path}: the screening network {file} is not the one the "
                         f"model was calibrated with (sha256 differs); restore it ({off})")
    screen = Classifier.load(file, model.n_threads, model.batch_size, mc_passes=1,
                             screen=False)
    if screen.classes != model.classes or screen.feature_shape != model.feature_shape \
            or screen.metadata["descriptor"] != model.metadata["descriptor"]:
        raise ModelError(f"{model.path}: its screening network {file} has other classes or "
                         f"another descriptor ({screen.classes}, "
                         f"{screen.metadata['descriptor']}); re-calibrate it with "
                         f"`insitu train screen`")
    return screen, rule


def screened_predictions(model, features: np.ndarray, ids, step: int, passes: int,
                         novelty_out: np.ndarray | None) -> tuple:
    """The cascade: ``model.screen`` on every atom (``passes`` MC passes if it has a
    dropout head), ``model``'s own network on the atoms the screen is not sure of.
    (mean probabilities (n, K), MI (n,), predictive entropy (n,)); ``novelty_out`` gets
    the model's novelty, NaN where the screen settled the atom. ``ids``: global ids
    seeding the masks (None: 0..n-1, one deterministic pass only)."""
    x = np.asarray(features)
    n = len(x)
    screen = model.screen
    ids = np.arange(n) if ids is None else np.asarray(ids, np.int64).reshape(n)
    own_novelty = None if screen.novelty_threshold is None else np.empty(n, np.float32)
    p, mi, entropy = screen.network_mc(x, ids, step, passes if screen.mc else 1, own_novelty)
    sure = p.max(axis=1) >= model.screen_rule.min_probability
    if own_novelty is not None:
        sure &= own_novelty <= screen.novelty_threshold
    rest = np.flatnonzero(~sure)
    if novelty_out is not None:
        novelty_out[:n] = np.nan
    if len(rest):
        sub = None if novelty_out is None else np.empty(len(rest), np.float32)
        p[rest], mi[rest], entropy[rest] = model.network_mc(x[rest], ids[rest], step, passes,
                                                            sub)
        if sub is not None:
            novelty_out[rest] = sub
    model.screen_counts += (n - len(rest), n)
    return p, mi, entropy
