"""The precision and determinism policy: applied by every stage, recorded in every result's provenance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lossgeom.device import pick_device, precision_record, use_deterministic_algorithms
from lossgeom.io.provenance import provenance
from lossgeom.problems.models import build_model


@pytest.fixture
def permissive_torch():
    """Start from PyTorch's permissive settings (TF32 allowed) and put the process's settings back afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision(),
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[0], saved[1]
    torch.set_float32_matmul_precision(saved[2])
    torch.use_deterministic_algorithms(saved[3], warn_only=saved[4])


def test_choosing_a_device_turns_tf32_off(permissive_torch):
    pick_device("cpu")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"


def test_the_policy_is_in_the_provenance_of_results(permissive_torch):
    pick_device("cpu")
    record = provenance()["precision"]
    assert record == precision_record()
    assert record["tf32_matmul"] is False and record["tf32_cudnn"] is False
    assert record["float32_matmul_precision"] == "highest"
    assert {"cuda", "cudnn", "deterministic_algorithms"} <= set(record)


def test_deterministic_algorithms_are_strict(permissive_torch):
    use_deterministic_algorithms()
    assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()


@pytest.mark.parametrize("spec", [{"name": "resnet", "depth": 8, "width": 4}, {"name": "densenet121"}],
                         ids=["resnet", "densenet121"])
def test_image_models_pool_by_a_mean_not_adaptive_pooling(spec, monkeypatch):
    """adaptive_avg_pool2d has no deterministic CUDA backward; a mean over H x W is the same number."""
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(0)
    model = build_model(spec, (3, 32, 32), 10).eval()
    reference = model(x)

    def refuse(*args, **kwargs):
        raise AssertionError("adaptive_avg_pool2d called")

    monkeypatch.setattr(F, "adaptive_avg_pool2d", refuse)
    out = model(x)
    torch.testing.assert_close(out, reference)
    features = torch.randn(2, 5, 4, 4)
    torch.testing.assert_close(features.mean(dim=(2, 3)), torch.ops.aten.adaptive_avg_pool2d(features, [1, 1]).flatten(1))
