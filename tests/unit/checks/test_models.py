"""HVP-free curvature of 1D slices and the running trace estimates, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossgeom.checks.models import running_mean, slice_curvature
from lossgeom.geometry.parameters import ParameterShifter
from lossgeom.theory.spectra import DiagonalQuadratic

from tests.unit.curvature_cases import case


def test_second_difference_is_exact_on_a_quadratic():
    lam = np.linspace(-1.0, 2.0, 40)
    model = DiagonalQuadratic(lam)
    with torch.no_grad():
        model.theta.copy_(torch.linspace(0.3, -0.2, 40, dtype=torch.float64))
    shifter = ParameterShifter(model, torch.zeros(40, dtype=torch.float64))
    loss_at = lambda: float(model(None).detach())  # noqa: E731
    eta = torch.randn(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = float((torch.as_tensor(lam) * eta**2).sum())
    for h in (1e-3, 0.1, 1.0):
        assert slice_curvature(shifter, loss_at, eta, h, loss_at()) == pytest.approx(exact, rel=1e-8)
    assert torch.equal(model.theta.detach(), shifter.theta), "parameters restored"


def test_second_difference_converges_like_h_squared_on_a_smooth_network():
    c = case("mlp_tanh_sines")
    shifter = ParameterShifter(c.model, torch.zeros(sum(p.numel() for p in c.model.parameters()), dtype=torch.float64))
    loss_at = lambda: float(c.loss_fn(c.model(c.x), c.y).detach())  # noqa: E731
    eta = torch.randn(len(shifter.theta), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = float(eta @ c.H @ eta)
    errors = [abs(slice_curvature(shifter, loss_at, eta, h, loss_at()) - exact) for h in (1e-2, 1e-3)]
    assert errors[1] < 0.05 * errors[0], "error shrinks ~100x when h shrinks 10x"
    assert errors[1] < 1e-4 * abs(exact)


def test_running_mean_and_standard_error():
    x = np.array([1.0, 3.0, 2.0, 6.0])
    table = running_mean(x)
    assert table["estimate"].tolist() == [1.0, 2.0, 2.0, 3.0]
    assert np.isnan(table["standard_error"][0])
    assert table["standard_error"].iloc[-1] == pytest.approx(x.std(ddof=1) / 2)
