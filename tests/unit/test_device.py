"""The precision and determinism policy: applied by every stage, recorded in every result's provenance."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lossgeom.device import CUBLAS_WORKSPACE, deterministic_torch, pick_device, precision_record
from lossgeom.io.provenance import provenance
from lossgeom.problems.models import build_model


@pytest.fixture
def permissive_torch(monkeypatch):
    """Start from PyTorch's permissive settings (TF32 allowed, nondeterministic kernels, cuDNN benchmarking, no
    cuBLAS workspace variable) and put the process's settings back afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision(),
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # monkeypatch restores both afterwards
    monkeypatch.delenv("TORCHINDUCTOR_DETERMINISTIC", raising=False)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[0], saved[1]
    torch.set_float32_matmul_precision(saved[2])
    torch.use_deterministic_algorithms(saved[3], warn_only=saved[4])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[5], saved[6]


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


def _deterministic_state() -> dict:
    return {"algorithms": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic, "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"), "inductor": os.environ.get("TORCHINDUCTOR_DETERMINISTIC")}


def test_deterministic_torch_sets_every_switch_strictly_and_again(permissive_torch):
    """What every torch stage's entry calls: deterministic kernels (strict: a missing one raises), cuDNN's
    deterministic algorithms without benchmarking, no TF32, cuBLAS's fixed workspace; calling it again changes
    nothing (here on the CPU, where it must be safe as well)."""
    deterministic_torch()
    state = _deterministic_state()
    assert state["algorithms"] and not state["warn_only"]
    assert state["tf32_matmul"] is False and state["tf32_cudnn"] is False and state["matmul_precision"] == "highest"
    assert state["cudnn_deterministic"] is True and state["cudnn_benchmark"] is False
    assert state["cublas"] == CUBLAS_WORKSPACE == ":4096:8"
    deterministic_torch()
    assert _deterministic_state() == state
    assert provenance()["precision"]["deterministic_algorithms"] is True


def test_deterministic_torch_keeps_a_chosen_cublas_workspace(permissive_torch, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the other deterministic setting cuBLAS documents
    deterministic_torch()
    assert _deterministic_state()["cublas"] == ":16:8"


def test_deterministic_torch_is_cheap_and_reaches_inductor():
    """torch.use_deterministic_algorithms imports Inductor's config (1.5 s); the helper does not, and Inductor,
    loaded later by torch.compile, still starts in its deterministic mode. A fresh interpreter: nothing loaded."""
    code = ("import sys, time, torch\nfrom lossgeom.device import deterministic_torch\nstart = time.perf_counter()\n"
            "deterministic_torch()\nelapsed = time.perf_counter() - start\n"
            "assert 'torch._inductor.config' not in sys.modules\nimport torch._inductor.config as inductor\n"
            "assert inductor.deterministic and torch.are_deterministic_algorithms_enabled()\n"
            "deterministic_torch()\nassert inductor.deterministic\nprint(elapsed)")
    env = {k: v for k, v in os.environ.items() if k not in ("CUBLAS_WORKSPACE_CONFIG", "TORCHINDUCTOR_DETERMINISTIC")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 0.1


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
