"""Knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a
Neural Network") of a trained classifier (the teacher, an exported ``.onnx``) into the
network ``insitu train fit --teacher MODEL.onnx`` trains (the student).

The teacher's class probabilities on the training atoms are computed once with
onnxruntime (dropout off, :class:`insitu.model.Classifier` with ``mc_passes=1``); its
logits are taken as the log-probabilities (softmax is invariant to the constant by which
they differ from the network's logits). The student minimises, per batch of B atoms,

    L = (1 - A) CE(y, z_s) + A TAU^2 KL(softmax(z_t / TAU) || softmax(z_s / TAU))

(Hinton et al. Sec. 2: the soft term scaled by TAU^2 keeps its gradient magnitude
independent of TAU), with CE the (optionally class-weighted) cross-entropy of the hard
labels y and KL summed over the K classes and averaged over the batch. Validation atoms
never get a soft target: the teacher is run on the training atoms only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_ALPHA", "DEFAULT_TEMPERATURE", "Distillation", "distillation_loss",
           "load_teacher_targets", "distill_text", "distill_arguments"]

DEFAULT_ALPHA = 0.7
"""Weight A of the teacher term."""
DEFAULT_TEMPERATURE = 2.0
"""Softmax temperature TAU of the teacher term."""
LOG_FLOOR = 1e-30
"""Probabilities below this are floored before the log (float32 softmax underflow)."""


@dataclass
class Distillation:
    """The teacher's logits on the dataset rows (NaN on rows it was not run on: validation
    and undescribed atoms) with the loss weights and what the model metadata records."""

    teacher_logits: np.ndarray
    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"distillation alpha must be in [0, 1], not {self.alpha}")
        if not self.temperature > 0.0:
            raise ValueError(f"distillation temperature must be > 0, not {self.temperature}")

    def soft_log_targets(self, rows: np.ndarray):
        """log softmax(z_t / TAU) of dataset ``rows`` (torch float32, (len(rows), K));
        raises ValueError for a row without a teacher output (a validation atom)."""
        import torch

        z = np.asarray(self.teacher_logits[np.asarray(rows)], dtype=np.float64)
        if not np.isfinite(z).all():
            raise ValueError("distillation: soft targets requested for rows the teacher was "
                             "not run on (validation or undescribed atoms)")
        return torch.log_softmax(torch.from_numpy(z / self.temperature), dim=1).float()

    def loss(self, student_logits, labels, soft_log_targets, hard_loss):
        """L of the module docstring; ``hard_loss``: the CE module of the hard labels."""
        return distillation_loss(student_logits, labels, soft_log_targets, self.alpha,
                                 self.temperature, hard_loss)

    def metadata(self) -> dict:
        """What the training summary records: teacher file name and sha256, A, TAU."""
        return {**self.info, "alpha": float(self.alpha), "temperature": float(self.temperature),
                "method": "Hinton et al. 2015 knowledge distillation"}


def distillation_loss(student_logits, labels, soft_log_targets, alpha: float,
                      temperature: float, hard_loss=None):
    """(1 - A) CE(y, z_s) + A TAU^2 KL(p_t || softmax(z_s / TAU)), KL averaged over the batch;
    ``soft_log_targets`` = log p_t = log softmax(z_t / TAU) (torch tensors)."""
    import torch
    import torch.nn.functional as F

    log_p_s = torch.log_softmax(student_logits / temperature, dim=1)
    kl = F.kl_div(log_p_s, soft_log_targets, reduction="batchmean", log_target=True)
    hard = (hard_loss or torch.nn.CrossEntropyLoss())(student_logits, labels)
    return (1.0 - alpha) * hard + alpha * temperature ** 2 * kl


def load_teacher_targets(teacher_path, features: np.ndarray, rows: np.ndarray, classes,
                         descriptor, alpha: float = DEFAULT_ALPHA,
                         temperature: float = DEFAULT_TEMPERATURE,
                         batch_size: int = 4096) -> Distillation:
    """Run the teacher ``teacher_path`` once on dataset ``rows`` (the training atoms) of
    ``features`` (computed by ``descriptor``, the dataset's) and return the
    :class:`Distillation` (NaN logits elsewhere).

    Refuses (ValueError) a teacher whose classes are not ``classes`` in the same order, and
    (:class:`insitu.descriptors.fingerprint.DescriptorMismatch`) one whose descriptor is
    not the dataset's, or whose training features came from other descriptor code
    (its recorded fingerprint; a teacher on a smaller n_G gets the exactly cropped maps,
    :func:`insitu.training.nm_crop.features_for`)."""
    from insitu.descriptors.fingerprint import check_fingerprint
    from insitu.model import Classifier
    from insitu.training.nm_crop import features_for

    path = Path(teacher_path)
    teacher = Classifier.load(path, n_threads=1, batch_size=batch_size, mc_passes=1,
                              screen=False)
    if [c.lower() for c in teacher.classes] != [str(c).lower() for c in classes]:
        raise ValueError(f"teacher {path.name} has classes {teacher.classes}, the dataset "
                         f"{list(classes)}: distillation needs the same classes in the same "
                         "order")
    check_fingerprint(teacher.metadata.get("training", {}).get("descriptor_fingerprint"),
                      teacher.descriptor, f"teacher {path.name} (its training features)")
    rows = np.asarray(rows, dtype=np.int64)
    logits = np.full((len(features), len(classes)), np.nan, dtype=np.float32)
    what = f"the dataset features (teacher {path.name})"
    for s in range(0, len(rows), 65536):
        chunk = rows[s:s + 65536]
        x = features_for(np.asarray(features[chunk], np.float32), descriptor,
                         teacher.descriptor, what)
        proba = teacher.predict_proba(x)
        logits[chunk] = np.log(np.maximum(proba, LOG_FLOOR))
    info = {"teacher": path.name, "teacher_path": str(teacher_path),
            "teacher_sha256": teacher.sha256,
            "teacher_atoms": int(len(rows))}
    return Distillation(logits, alpha=alpha, temperature=temperature, info=info)


def distill_text(training: dict) -> str:
    """For a model card: one sentence on the distillation recorded in ``training`` (the
    model's training metadata); empty when the model was not distilled."""
    d = training.get("distillation")
    if not d:
        return ""
    return (f" Knowledge distillation (Hinton et al. 2015) from the teacher "
            f"`{d.get('teacher')}` (sha256 `{str(d.get('teacher_sha256'))[:16]}...`, its "
            f"probabilities on the {d.get('teacher_atoms')} training atoms): loss "
            f"(1 - A) CE + A TAU^2 KL(teacher || student) at temperature TAU, A = "
            f"{d.get('alpha')}, TAU = {d.get('temperature')}.")


def distill_arguments(training: dict) -> str:
    """The ``insitu train fit`` options that repeat the distillation in ``training``."""
    d = training.get("distillation")
    if not d:
        return ""
    return (f" --teacher {d.get('teacher_path') or d.get('teacher')} "
            f"--distill-alpha {d.get('alpha')} --distill-temperature {d.get('temperature')}")
