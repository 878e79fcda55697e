"""The feature-space novelty of a model (its graph output ``novelty`` and metadata key
``novelty``, written by :mod:`insitu.training.novelty`): -2 ln of the largest
class-conditional Gaussian density of an atom's trunk features. An atom above the stored
threshold is ``unknown``: its environment is unlike every training class."""

from __future__ import annotations

__all__ = ["NOVELTY_OUTPUT", "novelty_threshold"]

NOVELTY_OUTPUT = "novelty"


def novelty_threshold(session, metadata: dict, path) -> float | None:
    """The model's novelty threshold, None for a model without the novelty output.
    Raises ValueError when the metadata and the graph disagree."""
    has_output = NOVELTY_OUTPUT in [o.name for o in session.get_outputs()]
    meta = metadata.get("novelty")
    if meta is None and not has_output:
        return None
    threshold = meta.get("threshold") if isinstance(meta, dict) else None
    if not has_output or isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"{path}: the novelty output and the metadata insitu.novelty "
                         "(with a numeric 'threshold') come together; re-calibrate the model "
                         "with `insitu train mc`")
    return float(threshold)
