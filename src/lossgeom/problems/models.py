"""Model registry: MLP, LeNet-style CNN (1D or 2D), CIFAR ResNet (depth 6n+2), DenseNet-121 for 32x32.

``build_model(spec, input_shape, output_dim)`` builds a model from a config spec; the input shape (without
batch dimension) decides the layer sizes, so the same spec works on digits, MNIST-1D or CIFAR.
Parameter counts (``count_parameters``) are reported in every training result.

Every model also accepts ``init_scale`` alpha: after the architecture's own initialization every trainable
parameter is multiplied by alpha, theta_0 -> alpha theta_0. Small alpha starts training at a small logit
scale (the transient-curvature regime of Fort & Ganguli 2019); the Goldilocks zone is a range of alpha.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Mapping

import torch
from torch import nn
import torch.nn.functional as F

from ..errors import ConfigError
from .registry import Registry

MODELS = Registry("model", options={"init_scale": 1.0})

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU}


def build_model(spec: Mapping[str, Any], input_shape: tuple[int, ...], output_dim: int) -> nn.Module:
    """Build the model described by ``spec`` (``{"name": ..., **params}``) for the given data shape.

    The architecture initializes itself from torch's global RNG; ``init_scale`` then scales the result.
    """
    init_scale = MODELS.options_of(spec)["init_scale"]
    model = MODELS.build(spec, tuple(input_shape), int(output_dim))
    return scale_initialization(model, init_scale)


def scale_initialization(model: nn.Module, alpha: float) -> nn.Module:
    """Multiply every trainable parameter by ``alpha`` in place (alpha = 1 leaves the model untouched).

    >>> net = nn.Linear(2, 1)
    >>> before = net.weight.detach().clone()
    >>> torch.equal(scale_initialization(net, 3.0).weight.detach(), 3.0 * before)
    True
    """
    if not alpha > 0:
        raise ConfigError(f"model init_scale must be > 0, got {alpha}")
    if alpha != 1.0:
        with torch.no_grad():
            for _, parameter in trainable_parameters(model):
                parameter.mul_(alpha)
    return model


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every trainable parameter, in ``model.named_parameters()`` order.

    This order defines every flat vector of the library: Hessian products, eigenvectors and directions.
    """
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


@contextlib.contextmanager
def keep_modes(model: nn.Module) -> Iterator[nn.Module]:
    """Run the body, then give every submodule the train/eval flag it had, even when the body raises.

    ``model.train(flag)`` sets every submodule alike; a caller may have left some in another mode on purpose (a frozen
    BatchNorm), which restoring only the top-level flag would undo.
    """
    saved = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, training in saved:
            m.training = training


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalar parameters N (the dimension of the loss landscape)."""
    return sum(p.numel() for _, p in trainable_parameters(model))


def _activation(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation {name!r} is unknown; allowed values: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


@MODELS.register("mlp")
def mlp(input_shape, output_dim, *, hidden: tuple[int, ...] = (64, 64), activation: str = "relu") -> nn.Module:
    """Fully connected network: flatten, then ``hidden`` layers with ``activation``, then a linear output."""
    act = _activation(activation)
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        width = h
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


@MODELS.register("lenet")
def lenet(
    input_shape,
    output_dim,
    *,
    channels: tuple[int, ...] = (6, 16),
    kernel_size: int = 5,
    hidden: tuple[int, ...] = (120, 84),
    activation: str = "relu",
) -> nn.Module:
    """LeNet-style CNN: [conv ('same' padding), activation, max-pool 2] per entry of ``channels``, then MLP.

    Inputs of shape (C, L) use 1D convolutions (MNIST-1D), (C, H, W) 2D ones (digits, MNIST, CIFAR).
    The classic LeNet-5 is the default: channels (6, 16), kernel 5, hidden (120, 84).
    """
    if len(input_shape) not in (2, 3):
        raise ConfigError(f"lenet needs inputs of shape (C, L) or (C, H, W), got {list(input_shape)}")
    conv, pool = (nn.Conv1d, nn.MaxPool1d) if len(input_shape) == 2 else (nn.Conv2d, nn.MaxPool2d)
    act = _activation(activation)
    layers: list[nn.Module] = []
    in_ch, spatial = input_shape[0], list(input_shape[1:])
    for out_ch in channels:
        layers += [conv(in_ch, out_ch, kernel_size, padding="same"), act()]
        if min(spatial) >= 2:
            layers.append(pool(2))
            spatial = [s // 2 for s in spatial]
        in_ch = out_ch
    layers.append(nn.Flatten())
    width = in_ch * math.prod(spatial)
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        width = h
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


class _BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut (option A: strided subsampling + zero channels)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.stride, self.pad = stride, out_ch - in_ch

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 images (He et al. 2016, Sec. 4.2): depth = 6n + 2, widths (w, 2w, 4w)."""

    def __init__(self, in_channels: int, output_dim: int, depth: int, width: int) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ConfigError(f"resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks: list[nn.Module] = []
        in_ch = width
        for stage, out_ch in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(_BasicBlock(in_ch, out_ch, 2 if (stage > 0 and i == 0) else 1))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(in_ch, output_dim)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))  # global average pooling; see _DenseNet32


@MODELS.register("resnet")
def resnet(input_shape, output_dim, *, depth: int = 20, width: int = 16) -> nn.Module:
    """CIFAR-style ResNet with ``depth`` = 6n+2 (ResNet-56: depth 56, about 0.85e6 parameters)."""
    if len(input_shape) != 3:
        raise ConfigError(f"resnet needs image inputs (C, H, W), got {list(input_shape)}")
    return CifarResNet(input_shape[0], output_dim, depth, width)


class _ProjectionBlock(_BasicBlock):
    """The basic block with a 1x1 conv-BN shortcut where the shape changes (option B), else the identity."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__(in_ch, out_ch, stride)
        self.projection = (nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
                           if stride != 1 or in_ch != out_ch else None)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.projection is None else self.projection(x)


@MODELS.register("resnet18")
def resnet18(input_shape, output_dim, *, width: int = 64) -> nn.Module:
    """ResNet-18 for 32x32 images as Yang et al. 2021 scale it: a 3x3 stride-1 stem (no max-pool), four stages of two
    basic blocks with (k, 2k, 4k, 8k) channels, projection shortcuts, global average pooling. k = 64 is the usual
    CIFAR ResNet-18 (11,173,962 parameters with 10 classes); Yang et al. vary k from 2 to 128."""
    if len(input_shape) != 3:
        raise ConfigError(f"resnet18 needs image inputs (C, H, W), got {list(input_shape)}")
    if not isinstance(width, int) or width < 1:
        raise ConfigError(f"resnet18 width must be an integer >= 1 (k: channels of the first stage), got {width!r}")
    stem = nn.Sequential(nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
    blocks, in_ch = [], width
    for stage, out_ch in enumerate((width, 2 * width, 4 * width, 8 * width)):
        for i in range(2):
            blocks.append(_ProjectionBlock(in_ch, out_ch, 2 if (stage > 0 and i == 0) else 1))
            in_ch = out_ch
    return nn.Sequential(stem, *blocks, _GlobalMean(), nn.Linear(in_ch, output_dim))


class _GlobalMean(nn.Module):
    """The mean over H x W (global average pooling; see _DenseNet32 for why not adaptive_avg_pool2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def _densenet32_class() -> type[nn.Module]:
    """torchvision's DenseNet with global average pooling written as a mean over H x W.

    ``adaptive_avg_pool2d`` to 1 x 1 computes the same mean, but its CUDA backward has no deterministic
    kernel, so strictly deterministic training would refuse it. Parameter names and initialization are
    torchvision's (densenet121 = DenseNet(32, (6, 12, 24, 16), 64)).
    """
    from torchvision.models.densenet import DenseNet

    class DenseNet32(DenseNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(F.relu(self.features(x)).mean(dim=(2, 3)))

    return DenseNet32


@MODELS.register("densenet121")
def densenet121(input_shape, output_dim, *, memory_efficient: bool = False) -> nn.Module:
    """torchvision DenseNet-121 adapted to 32x32 inputs: 3x3 stride-1 stem, no initial max-pool.

    With 10 classes it has about 6.96e6 parameters (the paper's ~7e6 model). No pretrained weights.
    """
    if len(input_shape) != 3:
        raise ConfigError(f"densenet121 needs image inputs (C, H, W), got {list(input_shape)}")
    net = _densenet32_class()(32, (6, 12, 24, 16), 64, num_classes=output_dim, memory_efficient=memory_efficient)
    stem_out = net.features.conv0.out_channels
    net.features.conv0 = nn.Conv2d(input_shape[0], stem_out, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.features.conv0.weight)
    net.features.pool0 = nn.Identity()
    return net
