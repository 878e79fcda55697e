"""The model runtime (stage 3: features -> probabilities): the ONNX file format and the one
:class:`Classifier` used offline and in situ. Never imports torch."""

from .classifier import (
           DEFAULT_BATCH_SIZE,
           ClassificationResult,
           Classifier,
           labels_from_probabilities,
)
from .mc_dropout import McDropout, dropout_masks, mutual_information
from .onnx_format import ModelError, file_sha256

__all__ = ["Classifier", "ClassificationResult", "ModelError", "file_sha256",
           "labels_from_probabilities", "DEFAULT_BATCH_SIZE", "McDropout", "dropout_masks",
           "mutual_information"]
