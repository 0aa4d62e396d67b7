"""The library leaves the caller's objects as it found them: every submodule's train/eval mode (also after an error),
the parameters' gradients, torch's global random generator, and the model's dtype and parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossgeom.engine.hessian import HessianOperator
from lossgeom.geometry.curvature import exact_projection
from lossgeom.geometry.paths import recompute_batchnorm
from lossgeom.training.continuation import continue_training
from lossgeom.training.evaluation import evaluate
from lossgeom.training.loop import train_experiment


def mixed_model() -> torch.nn.Module:
    """Train mode at the top, a BatchNorm frozen in eval mode by its user."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    model.train()
    model[1].eval()
    return model


def modes(model: torch.nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(40, 3, generator=g), torch.randint(0, 2, (40,), generator=g)


def test_evaluate_gives_every_submodule_its_mode_back():
    model, (x, y) = mixed_model(), data()
    before = modes(model)
    evaluate(model, x, y, "classification", 16)
    assert modes(model) == before == [True, True, False, True, True]


def test_continued_training_leaves_modes_gradients_and_the_global_generator():
    model, (x, y) = mixed_model(), data()
    before, state = modes(model), torch.get_rng_state()
    continue_training(model, F.cross_entropy, x, y, epochs=1, batch_size=10, lr=0.1, seed=3)
    assert modes(model) == before
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), state)


def test_continued_training_gives_the_modes_back_when_it_fails():
    model, (x, y) = mixed_model(), data()
    before = modes(model)
    with pytest.raises(FloatingPointError, match="continued training diverged"):
        continue_training(model, lambda out, target: F.cross_entropy(out, target) * float("inf"), x, y, epochs=1,
                          batch_size=10, lr=0.1)
    assert modes(model) == before


def test_recomputing_batchnorm_gives_every_submodule_its_mode_back():
    model, (x, _) = mixed_model(), data()
    before = modes(model)
    assert recompute_batchnorm(model, x, 16)
    assert modes(model) == before and model[1].momentum == 0.1


def test_training_an_experiment_leaves_the_callers_generator(tmp_path):
    state = torch.get_rng_state()
    spec = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 60, "n_test": 20},
            "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 1, "batch_size": 30, "device": "cpu", "seed": 5}}
    train_experiment("t", spec, tmp_path / "checkpoint.pt", progress=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_exact_projection_takes_directions_in_another_dtype():
    model, (x, y) = mixed_model(), data()
    model = model.double().eval()
    n = sum(p.numel() for p in model.parameters())
    eta, delta = torch.ones(n), torch.linspace(-1, 1, n)  # float32 directions, a float64 model
    M, g = exact_projection(model, lambda: HessianOperator(model, F.cross_entropy, x.double(), y), eta, delta, 0.1, 0.0)
    M64, g64 = exact_projection(model, lambda: HessianOperator(model, F.cross_entropy, x.double(), y), eta.double(),
                                delta.double(), 0.1, 0.0)
    np.testing.assert_allclose(M, M64, rtol=1e-12)
    np.testing.assert_allclose(g, g64, rtol=1e-12)
