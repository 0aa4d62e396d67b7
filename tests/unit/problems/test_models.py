"""Models: parameter counts against closed forms and published sizes, output shapes, bad specs."""

from __future__ import annotations

import pytest
import torch

from lossgeom.errors import ConfigError
from lossgeom.problems.models import build_model, count_parameters


def dense(fan_in: int, fan_out: int) -> int:
    return (fan_in + 1) * fan_out


def test_mlp_count_and_shape():
    net = build_model({"name": "mlp", "hidden": [32, 16], "activation": "tanh"}, (1, 8, 8), 10)
    assert count_parameters(net) == dense(64, 32) + dense(32, 16) + dense(16, 10)
    assert net(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    assert any(isinstance(m, torch.nn.Tanh) for m in net.modules())


def test_lenet5_on_mnist_count():
    net = build_model({"name": "lenet"}, (1, 28, 28), 10)  # LeNet-5 widths, 'same' convolutions
    conv = (1 * 6 * 25 + 6) + (6 * 16 * 25 + 16)
    fc = dense(16 * 7 * 7, 120) + dense(120, 84) + dense(84, 10)
    assert count_parameters(net) == conv + fc
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_lenet_uses_1d_convolutions_for_sequences():
    net = build_model({"name": "lenet", "channels": [4, 4], "kernel_size": 3, "hidden": [16]}, (1, 40), 10)
    assert any(isinstance(m, torch.nn.Conv1d) for m in net.modules())
    conv = (1 * 4 * 3 + 4) + (4 * 4 * 3 + 4)
    assert count_parameters(net) == conv + dense(4 * 10, 16) + dense(16, 10)
    assert net(torch.randn(3, 1, 40)).shape == (3, 10)


def resnet_count(n: int, w: int = 16, classes: int = 10) -> int:
    """CIFAR ResNet with option-A shortcuts: convs without bias, BN has 2 parameters per channel."""
    conv = lambda i, o: i * o * 9  # noqa: E731
    total = conv(3, w) + 2 * w
    for stage, width in enumerate((w, 2 * w, 4 * w)):
        for block in range(n):
            fan_in = width // 2 if (stage > 0 and block == 0) else width
            total += conv(fan_in, width) + conv(width, width) + 4 * width
    return total + dense(4 * w, classes)


@pytest.mark.parametrize("depth", [8, 20, 56])
def test_cifar_resnet_counts(depth):
    net = build_model({"name": "resnet", "depth": depth}, (3, 32, 32), 10)
    assert count_parameters(net) == resnet_count((depth - 2) // 6)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet56_is_the_published_size():
    n = count_parameters(build_model({"name": "resnet", "depth": 56}, (3, 32, 32), 10))
    assert round(n / 1e6, 2) == 0.85  # He et al. (2016), Table 6


def resnet18_count(k: int, classes: int = 10, channels: int = 3) -> int:
    """Weights of ResNet-18(k) by hand: stem conv + BN, per block two 3x3 convs + BNs, a 1x1 conv + BN shortcut where
    the channels double, the linear head."""
    total = 9 * channels * k + 2 * k
    c_in = k
    for c_out in (k, 2 * k, 4 * k, 8 * k):
        for block in range(2):
            total += 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out
            if c_in != c_out:
                total += c_in * c_out + 2 * c_out
            c_in = c_out
    return total + 8 * k * classes + classes


@pytest.mark.parametrize("k", [2, 3, 16, 64, 128])
def test_resnet18_of_width_k(k):
    net = build_model({"name": "resnet18", "width": k}, (3, 32, 32), 10)
    assert count_parameters(net) == resnet18_count(k)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet18_at_width_64_is_the_usual_cifar_resnet18():
    assert count_parameters(build_model({"name": "resnet18"}, (3, 32, 32), 10)) == 11_173_962  # the published size
    with pytest.raises(ConfigError, match="resnet18 needs image inputs"):
        build_model({"name": "resnet18"}, (40,), 10)


def test_densenet121_for_32x32():
    from torchvision.models import densenet121

    net = build_model({"name": "densenet121"}, (3, 32, 32), 10)
    reference = count_parameters(densenet121(weights=None, num_classes=10))
    # only the stem changes: a 7x7 convolution (3 -> 64) becomes a 3x3 one
    assert count_parameters(net) == reference - 3 * 64 * 49 + 3 * 64 * 9
    assert 6.9e6 < count_parameters(net) < 7.0e6  # the paper's ~7e6-parameter model
    assert isinstance(net.features.pool0, torch.nn.Identity)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_bad_model_specs():
    with pytest.raises(ConfigError, match="depth must be 6n\\+2"):
        build_model({"name": "resnet", "depth": 21}, (3, 32, 32), 10)
    with pytest.raises(ConfigError, match="activation 'sigmoid' is unknown; allowed values: relu, tanh"):
        build_model({"name": "mlp", "activation": "sigmoid"}, (4,), 2)
    with pytest.raises(ConfigError, match="resnet needs image inputs"):
        build_model({"name": "resnet"}, (1, 40), 10)
    with pytest.raises(ConfigError, match="model 'mlp': unknown key\\(s\\) 'depth'; allowed keys: hidden, activation"):
        build_model({"name": "mlp", "depth": 3}, (4,), 2)


@pytest.mark.parametrize("alpha", [0.1, 3.0])
def test_init_scale_multiplies_the_initialization(alpha):
    from lossgeom.problems.models import build_model

    torch.manual_seed(0)
    plain = build_model({"name": "lenet", "channels": [2], "hidden": [8]}, (1, 8, 8), 10)
    torch.manual_seed(0)
    scaled = build_model({"name": "lenet", "channels": [2], "hidden": [8], "init_scale": alpha}, (1, 8, 8), 10)
    for (name, p), (_, q) in zip(plain.named_parameters(), scaled.named_parameters()):
        assert torch.allclose(q, alpha * p, rtol=0, atol=1e-7), name


def test_init_scale_must_be_positive():
    from lossgeom.problems.models import build_model

    with pytest.raises(ConfigError, match="init_scale must be > 0, got -1"):
        build_model({"name": "mlp", "init_scale": -1}, (4,), 2)
