"""Networks: the Neighbors Map paper CNN (Appendix A), lighter Neighbors Map CNNs (by name:
:data:`NM_ARCHITECTURES`) and a small MLP for BOO features."""

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
        return self.head(self.features(x * self.input_scale))

    def trunk(self, x):
        """The layers before the first dropout (run once per atom under MC dropout)."""
        head = self.head[:_first_dropout(self.head)]
        return head(self.features(x * self.input_scale))

    def head_layers(self) -> nn.Sequential:
        """The layers from the first dropout on (run T times under MC dropout)."""
        return self.head[_first_dropout(self.head):]


class DownsampledNeighborsMapCNN(NeighborsMapCNN):
    """The paper CNN's layers and head with the map halved before the widest convolution
    (16 -> 32 channels), which then runs on n_G/2 x n_G/2. ``stem='pool'``: the paper's
    Conv(C,16,5,p2) - ReLU with its MaxPool(2) moved right after it; ``stem='stride'``: a
    4 x 4 stride-2 Conv(C,16,4,s2,p1) - ReLU instead (no convolution at n_G x n_G). Then
    Conv(16,32,3,p1) - ReLU - Conv(32,16,3,p1) - ReLU - Conv(16,16,3,s2,p1) - ReLU -
    Conv(16,32,2,s2) - ReLU - Flatten - the paper's head."""

    def __init__(self, in_channels: int = 1, n_classes: int = 2, n_grid: int = 32,
                 dropout: float = 0.5, input_scale: float = 1.0, stem: str = "pool"):
        super().__init__(in_channels, n_classes, n_grid, dropout, input_scale)
        if stem not in ("pool", "stride", "patch", "stridepool"):
            raise ValueError(f"stem must be pool, stride, patch or stridepool, got {stem!r}")
        quarter = stem in ("patch", "stridepool")  # the rest runs on n_G/4 x n_G/4
        if quarter and n_grid % 16:
            raise ValueError(f"stem {stem!r} needs n_grid divisible by 16, got {n_grid}")
        if stem == "pool":
            first = [nn.Conv2d(in_channels, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
        elif stem == "patch":  # one 4 x 4 block of the map per output pixel
            first = [nn.Conv2d(in_channels, 16, 4, stride=4), nn.ReLU()]
        else:
            first = [nn.Conv2d(in_channels, 16, 4, stride=2, padding=1), nn.ReLU()]
            first += [nn.MaxPool2d(2)] if stem == "stridepool" else []
        self.features = nn.Sequential(
            *first,
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 2, stride=2), nn.ReLU(),
            nn.Flatten(),
        )
        if quarter:
            self.head[1] = nn.Linear(32 * (n_grid // 16) ** 2, 24)


class LightNeighborsMapCNN(NeighborsMapCNN):
    """A lighter Neighbors Map CNN: the widest convolutions run after pooling, on fewer
    channels, and the flattened trunk is 16 x 4 x 4 = 256 features (the dense head, run T
    times under MC dropout, is half the paper's). Same head structure as the paper CNN
    (Dropout - Linear(., 24) - ReLU - BatchNorm1d(24) - Linear(24, K)), same ``trunk`` /
    ``head_layers`` split, so export and MC dropout are unchanged.

    ``width`` is the channel count of the first convolution; ``pool_input`` sum-pools the
    n_G x n_G map 2 x 2 first (the network then sees an n_G/2 map, as for n_G 16);
    ``pool_head`` max-pools the last feature maps 2 x 2 (16 x 2 x 2 = 64 features into the
    head: its T passes cost a quarter); ``stem_stride``: the first convolution is 4 x 4 with
    stride 2 (no convolution at full resolution, the costliest layer of onnxruntime's CPU
    kernels for few channels).
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, n_grid: int = 32,
                 dropout: float = 0.5, input_scale: float = 1.0, width: int = 8,
                 kernel: int = 5, pool_input: bool = False, pool_head: bool = False,
                 stem_stride: bool = False, last_dropout: bool = False):
        nn.Module.__init__(self)
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))
        if n_grid % (16 if pool_input else 8):
            raise ValueError(f"LightNeighborsMapCNN needs n_grid divisible by "
                             f"{16 if pool_input else 8}, got {n_grid}")
        layers: list[nn.Module] = []
        side = n_grid
        if pool_input:  # 2x2 sum: the map of a grid twice as coarse
            layers += [nn.AvgPool2d(2), _Scale(4.0)]
            side //= 2
        if stem_stride:  # a learned 2x downsampling instead of a full-resolution conv
            layers += [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.ReLU()]
        else:
            layers += [nn.Conv2d(in_channels, width, kernel, padding=kernel // 2), nn.ReLU(),
                       nn.MaxPool2d(2)]
        side //= 2
        if side > 8:
            layers += [nn.Conv2d(width, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            side //= 2
            width = 16
        layers += [nn.Conv2d(width, 16, 3, padding=1), nn.ReLU(),
                   nn.Conv2d(16, 16, 2, stride=2), nn.ReLU()]
        side //= 2
        if pool_head:
            layers.append(nn.MaxPool2d(2))
            side //= 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        flat = 16 * side ** 2
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(flat, 24), nn.ReLU(),
            nn.BatchNorm1d(24),
            nn.Linear(24, n_classes),
        ) if not last_dropout else nn.Sequential(  # the T MC passes: one 64 x K layer
            nn.Linear(flat, 64), nn.ReLU(),
            nn.BatchNorm1d(64),
            nn.Dropout(dropout),
            nn.Linear(64, n_classes),
        )


class _Scale(nn.Module):
    """Multiplies by a constant (AvgPool2d(2) x 4 = a 2x2 sum)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x):
        return x * self.factor


NM_ARCHITECTURES = {
    "paper": (NeighborsMapCNN, {}),
    "pool": (DownsampledNeighborsMapCNN, {"stem": "pool"}),
    "pstride": (DownsampledNeighborsMapCNN, {"stem": "stride"}),
    "small": (LightNeighborsMapCNN, {"width": 16}),
    "lite": (LightNeighborsMapCNN, {"width": 8}),
    "tiny": (LightNeighborsMapCNN, {"width": 8, "kernel": 3, "pool_input": True}),
    "small64": (LightNeighborsMapCNN, {"width": 16, "pool_head": True}),
    "lite64": (LightNeighborsMapCNN, {"width": 8, "pool_head": True}),
    "stride": (LightNeighborsMapCNN, {"width": 16, "stem_stride": True}),
    "stride64": (LightNeighborsMapCNN, {"width": 16, "stem_stride": True, "pool_head": True}),
    "stride-last": (LightNeighborsMapCNN, {"width": 16, "stem_stride": True,
                                           "last_dropout": True}),
    "patch": (DownsampledNeighborsMapCNN, {"stem": "patch"}),
    "stridepool": (DownsampledNeighborsMapCNN, {"stem": "stridepool"}),
}
"""Neighbors Map networks by name (``insitu train crystal --arch NAME``). ``paper``: the
CNN of Allera et al. Appendix A (:class:`NeighborsMapCNN`, ~13 MFLOP per atom at n_G 32);
``pool``: the paper CNN with its pooling before the widest convolution
(:class:`DownsampledNeighborsMapCNN`, ~5.9 MFLOP); ``pstride``: the paper CNN with a
stride-2 first convolution instead of the full-resolution one and the pooling (~5.2
MFLOP); ``small``/``lite``:
:class:`LightNeighborsMapCNN` with 16/8 channels in the first convolution and pooling
before the wider ones; ``small64``/``lite64``: the same with the last maps max-pooled to
2 x 2 (64 features into the head, whose T MC-dropout passes then cost a quarter);
``stride``/``stride64``: a 4 x 4 stride-2 first convolution (16 channels) instead of a
full-resolution one; ``stride-last``: ``stride`` with its dropout before the output layer
only (Dense(64) - ReLU - BatchNorm - Dropout - Dense(K)), so its T MC passes are one
64 x K layer; ``patch``/``stridepool``: the paper's layers after a stem that
quarters the map (4 x 4 stride-4 convolution; stride-2 convolution and max pooling; ~1.3
MFLOP at n_G 32); ``tiny``: the map sum-pooled to n_G/2 first, 3x3 kernels. MFLOP,
parameters, speed and accuracy: benchmarks/nm_pareto.md."""

NM_ARCH_TEXT = {
    "pool": "Neighbors Map CNN of Allera et al., Appendix A, with the max pooling moved before "
            "the widest convolution (insitu 'pool'): Conv(C,16,5) - ReLU - MaxPool(2) - "
            "Conv(16,32,3) - ReLU - Conv(32,16,3) - ReLU - Conv(16,16,3,stride 2) - ReLU - "
            "Conv(16,32,2,stride 2) - ReLU - Flatten(512) - Dropout(0.5) - Dense(24) - ReLU - "
            "BatchNorm - Dense(K); softmax inside the exported graph.",
    "pstride": "Neighbors Map CNN of Allera et al., Appendix A, with a stride-2 first "
               "convolution instead of the full-resolution one and the max pooling (insitu "
               "'pstride'): Conv(C,16,4,stride 2) - ReLU - Conv(16,32,3) - ReLU - Conv(32,16,3) "
               "- ReLU - Conv(16,16,3,stride 2) - ReLU - Conv(16,32,2,stride 2) - ReLU - "
               "Flatten(512) - Dropout(0.5) - Dense(24) - ReLU - BatchNorm - Dense(K); softmax "
               "inside the exported graph.",
    "small": "Light Neighbors Map CNN (insitu 'small'): Conv(C,16,5) - ReLU - MaxPool(2) - "
             "Conv(16,16,3) - ReLU - MaxPool(2) - Conv(16,16,3) - ReLU - "
             "Conv(16,16,2,stride 2) - ReLU - Flatten(256) - Dropout(0.5) - Dense(24) - ReLU "
             "- BatchNorm - Dense(K); softmax inside the exported graph.",
    "lite": "Light Neighbors Map CNN (insitu 'lite'): Conv(C,8,5) - ReLU - MaxPool(2) - "
            "Conv(8,16,3) - ReLU - MaxPool(2) - Conv(16,16,3) - ReLU - Conv(16,16,2,stride 2) "
            "- ReLU - Flatten(256) - Dropout(0.5) - Dense(24) - ReLU - BatchNorm - Dense(K); "
            "softmax inside the exported graph.",
    "small64": "Light Neighbors Map CNN (insitu 'small64'): Conv(C,16,5) - ReLU - MaxPool(2) - "
               "Conv(16,16,3) - ReLU - MaxPool(2) - Conv(16,16,3) - ReLU - "
               "Conv(16,16,2,stride 2) - ReLU - MaxPool(2) - Flatten(64) - Dropout(0.5) - "
               "Dense(24) - ReLU - BatchNorm - Dense(K); softmax inside the exported graph.",
    "lite64": "Light Neighbors Map CNN (insitu 'lite64'): Conv(C,8,5) - ReLU - MaxPool(2) - "
              "Conv(8,16,3) - ReLU - MaxPool(2) - Conv(16,16,3) - ReLU - "
              "Conv(16,16,2,stride 2) - ReLU - MaxPool(2) - Flatten(64) - Dropout(0.5) - "
              "Dense(24) - ReLU - BatchNorm - Dense(K); softmax inside the exported graph.",
    "stride": "Light Neighbors Map CNN (insitu 'stride'): Conv(C,16,4,stride 2) - ReLU - "
              "Conv(16,16,3) - ReLU - MaxPool(2) - Conv(16,16,3) - ReLU - "
              "Conv(16,16,2,stride 2) - ReLU - Flatten(256) - Dropout(0.5) - Dense(24) - ReLU "
              "- BatchNorm - Dense(K); softmax inside the exported graph.",
    "stride64": "Light Neighbors Map CNN (insitu 'stride64'): Conv(C,16,4,stride 2) - ReLU - "
                "Conv(16,16,3) - ReLU - MaxPool(2) - Conv(16,16,3) - ReLU - "
                "Conv(16,16,2,stride 2) - ReLU - MaxPool(2) - Flatten(64) - Dropout(0.5) - "
                "Dense(24) - ReLU - BatchNorm - Dense(K); softmax inside the exported graph.",
    "patch": "Neighbors Map CNN of Allera et al., Appendix A, on 4 x 4 blocks of the map "
             "(insitu 'patch'): Conv(C,16,4,stride 4) - ReLU - Conv(16,32,3) - ReLU - "
             "Conv(32,16,3) - ReLU - Conv(16,16,3,stride 2) - ReLU - Conv(16,32,2,stride 2) - "
             "ReLU - Flatten(32 (n_G/16)^2) - Dropout(0.5) - Dense(24) - ReLU - BatchNorm - "
             "Dense(K); softmax inside the exported graph.",
    "stridepool": "Neighbors Map CNN of Allera et al., Appendix A, on a quarter of the map "
                  "(insitu 'stridepool'): Conv(C,16,4,stride 2) - ReLU - MaxPool(2) - "
                  "Conv(16,32,3) - ReLU - Conv(32,16,3) - ReLU - Conv(16,16,3,stride 2) - ReLU "
                  "- Conv(16,32,2,stride 2) - ReLU - Flatten(32 (n_G/16)^2) - Dropout(0.5) - "
                  "Dense(24) - ReLU - BatchNorm - Dense(K); softmax inside the exported graph.",
    "stride-last": "Light Neighbors Map CNN (insitu 'stride-last'): the 'stride' trunk "
                   "(Conv(C,16,4,stride 2) - ReLU - Conv(16,16,3) - ReLU - MaxPool(2) - "
                   "Conv(16,16,3) - ReLU - Conv(16,16,2,stride 2) - ReLU - Flatten(256)) - "
                   "Dense(64) - ReLU - BatchNorm - Dropout(0.5) - Dense(K); softmax inside "
                   "the exported graph. Dropout before the output layer only: the MC-dropout "
                   "head run T times per atom is one 64 x K layer.",
    "tiny": "Light Neighbors Map CNN (insitu 'tiny'): 2x2 sum pooling of the map - "
            "Conv(C,8,3) - ReLU - MaxPool(2) - Conv(8,16,3) - ReLU - Conv(16,16,2,stride 2) - "
            "ReLU - Flatten(256) - Dropout(0.5) - Dense(24) - ReLU - BatchNorm - Dense(K); "
            "softmax inside the exported graph.",
}
"""Model-card text of the light architectures (the paper CNN's is the card's ``cnn``)."""

DEFAULT_NM_ARCH = "paper"
"""The architecture ``insitu train crystal --descriptor nm`` (and ``fit``, ``material``)
trains by default: the paper's CNN, the shipped ``crystal-nm``'s. The light ones
(``--arch stride``: ~6x its model-only speed, onnxruntime, 1 thread) lose 0.5 points of
validation accuracy on data/crystal_v3.h5 and 3.6 points near transitions
(benchmarks/nm_pareto.md), more than the 0.3 points a default may give up."""


class BOOMLP(nn.Module):
    """Small MLP on bond-orientational-order features; standardisation is part of the model
    (buffers ``mean`` / ``std``), so the exported graph takes raw features. Dropout after
    every hidden layer, or with ``last_only`` before the output layer only: then the MC
    head, run T times per atom, is one hidden x K layer (:data:`BOO_ARCHITECTURES`)."""

    def __init__(self, n_features: int, n_classes: int, hidden=(64, 64), dropout: float = 0.1,
                 mean=None, std=None, last_only: bool = False):
        super().__init__()
        mean = np.zeros(n_features) if mean is None else np.asarray(mean, dtype=np.float64)
        std = np.ones(n_features) if std is None else np.asarray(std, dtype=np.float64)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.maximum(std, 1e-8), dtype=torch.float32))
        layers = []
        prev = n_features
        for k, h in enumerate(hidden):
            layers += [nn.Linear(prev, h), nn.ReLU()]
            if not last_only or k == len(hidden) - 1:
                layers.append(nn.Dropout(dropout))
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


BOO_ARCHITECTURES = {
    "mlp": {"dropout": 0.1},  # after both hidden layers: the head is 64x64 + 64xK per pass
    "mlp-last": {"dropout": 0.5, "last_only": True},  # the head is 64xK per pass
}
"""BOO networks by name: keyword arguments of :class:`BOOMLP`."""


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(arch: str, feature_shape, n_classes: int, features=None) -> nn.Module:
    """A network by name: ``'cnn'`` (= ``'paper'``) or another name of
    :data:`NM_ARCHITECTURES` for Neighbors Maps (feature_shape (C, n_G, n_G)); ``'mlp'`` for
    flat features (feature_shape (F,)). ``features`` (training set) sets the CNN's input
    scale (1/std of the maps) and the MLP's standardisation."""
    feature_shape = tuple(int(s) for s in feature_shape)
    name = "paper" if arch == "cnn" else arch
    if name in NM_ARCHITECTURES:
        if len(feature_shape) != 3:
            raise ValueError(f"{arch} needs (C, n_G, n_G) features, got shape {feature_shape}")
        scale = 1.0
        if features is not None:
            std = float(np.asarray(features[:100000], dtype=np.float64).std())
            scale = 1.0 / std if std > 0 else 1.0
        cls, kwargs = NM_ARCHITECTURES[name]
        return cls(feature_shape[0], n_classes, feature_shape[1], input_scale=scale, **kwargs)
    if arch in BOO_ARCHITECTURES:
        n = int(np.prod(feature_shape))
        mean = std = None
        if features is not None:
            f = np.asarray(features, dtype=np.float64).reshape(len(features), n)
            mean, std = f.mean(axis=0), f.std(axis=0)
        return BOOMLP(n, n_classes, mean=mean, std=std, **BOO_ARCHITECTURES[arch])
    raise ValueError(f"unknown arch {arch!r} (use 'mlp', 'cnn' or one of "
                     f"{sorted(NM_ARCHITECTURES)})")


def multiply_adds(model: nn.Module, feature_shape) -> int:
    """Multiply-adds per atom of one deterministic pass (convolutions and dense layers;
    1 MAC = 2 FLOP), counted by running one sample through the network."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
            total += int(output[0].numel()) * k // module.groups
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros((1,) + tuple(int(s) for s in feature_shape)))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total
