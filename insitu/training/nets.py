"""Networks: the Neighbors Map paper CNN (Appendix A) and a small MLP for BOO features."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class NeighborsMapCNN(nn.Module):
    """The CNN of Allera et al., Appendix A, for C input channels and K classes.

    Layer by layer (for a 32x32 map): Conv(C,16,5,p2) -> ReLU -> Conv(16,32,3,p1) -> ReLU ->
    MaxPool(2) -> Conv(32,16,3,p1) -> ReLU -> Conv(16,16,3,s2,p1) -> ReLU ->
    Conv(16,32,2,s2) -> ReLU -> Flatten(512) -> Dropout(0.5) -> Linear(512,24) -> ReLU ->
    BatchNorm1d(24) -> Linear(24,K). 26,490 trainable parameters for C=1, K=2.

    ``forward`` returns logits; :class:`WithSoftmax` wraps it for export.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, n_grid: int = 32,
                 dropout: float = 0.5, input_scale: float = 1.0):
        super().__init__()
        # constant factor applied to the maps (a buffer, not a parameter): Neighbors Map
        # pixels are ~1e-3..1e-1, the scale brings them to O(1) inside the graph
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))
        if n_grid % 8:
            raise ValueError(f"NeighborsMapCNN needs n_grid divisible by 8, got {n_grid}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 5, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 2, stride=2), nn.ReLU(),
            nn.Flatten(),
        )
        flat = 32 * (n_grid // 8) ** 2
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(flat, 24), nn.ReLU(),
            nn.BatchNorm1d(24),
            nn.Linear(24, n_classes),
        )

    def forward(self, x):
        return self.head(self.trunk(x))

    def trunk(self, x):
        """The layers before the first dropout (run once per atom under MC dropout)."""
        return self.features(x * self.input_scale)

    def head_layers(self) -> nn.Sequential:
        """The layers from the first dropout on (run T times under MC dropout)."""
        return self.head


class BOOMLP(nn.Module):
    """Small MLP on bond-orientational-order features; standardisation is part of the model
    (buffers ``mean`` / ``std``), so the exported graph takes raw features."""

    def __init__(self, n_features: int, n_classes: int, hidden=(64, 64), dropout: float = 0.1,
                 mean=None, std=None):
        super().__init__()
        mean = np.zeros(n_features) if mean is None else np.asarray(mean, dtype=np.float64)
        std = np.ones(n_features) if std is None else np.asarray(std, dtype=np.float64)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.maximum(std, 1e-8), dtype=torch.float32))
        layers = []
        prev = n_features
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU(), nn.Dropout(dropout)]
            prev = h
        layers.append(nn.Linear(prev, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net((x - self.mean) / self.std)

    def trunk(self, x):
        """Standardisation and the layers before the first dropout (run once per atom
        under MC dropout)."""
        return self.net[:_first_dropout(self.net)]((x - self.mean) / self.std)

    def head_layers(self) -> nn.Sequential:
        """The layers from the first dropout on (run T times under MC dropout)."""
        return self.net[_first_dropout(self.net):]


def _first_dropout(seq: nn.Sequential) -> int:
    """Index of the first Dropout of ``seq`` (its length if there is none)."""
    return next((i for i, m in enumerate(seq) if isinstance(m, nn.Dropout)), len(seq))


class WithSoftmax(nn.Module):
    """Wraps a logits model so that the exported graph outputs probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features):
        return torch.softmax(self.model(features.float()), dim=-1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(arch: str, feature_shape, n_classes: int, features=None) -> nn.Module:
    """``arch='cnn'`` for Neighbors Maps (feature_shape (C, n_G, n_G)); ``'mlp'`` for flat
    features (feature_shape (F,)); ``features`` (training set) sets the MLP's standardisation."""
    feature_shape = tuple(int(s) for s in feature_shape)
    if arch == "cnn":
        if len(feature_shape) != 3:
            raise ValueError(f"cnn needs (C, n_G, n_G) features, got shape {feature_shape}")
        scale = 1.0
        if features is not None:
            std = float(np.asarray(features[:100000], dtype=np.float64).std())
            scale = 1.0 / std if std > 0 else 1.0
        return NeighborsMapCNN(feature_shape[0], n_classes, feature_shape[1], input_scale=scale)
    if arch == "mlp":
        n = int(np.prod(feature_shape))
        mean = std = None
        if features is not None:
            f = np.asarray(features, dtype=np.float64).reshape(len(features), n)
            mean, std = f.mean(axis=0), f.std(axis=0)
        return BOOMLP(n, n_classes, mean=mean, std=std)
    raise ValueError(f"unknown arch {arch!r} (use 'cnn' or 'mlp')")
