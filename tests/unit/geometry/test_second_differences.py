"""Second differences along 1D slices and their error against closed forms: exact on a quadratic loss, h^2 on a
smooth one, rounding that grows as eps / r^2, and the kink error of a ReLU network that vanishes below the kink
distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossgeom.geometry.parameters import ParameterShifter
from lossgeom.geometry.second_differences import bias_versus_step, slice_curvature, summarize
from lossgeom.problems.data import load_dataset
from lossgeom.problems.models import build_model
from lossgeom.theory.spectra import DiagonalQuadratic

from tests.unit.curvature_cases import case

STEPS = (1e-1, 1e-2, 1e-3, 1e-4)


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


def test_a_slice_leaves_the_shifter_as_it_was():
    model = DiagonalQuadratic(np.array([1.0, -2.0, 3.0]))
    own = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    shifter = ParameterShifter(model, own)
    slice_curvature(shifter, lambda: float(model(None).detach()), torch.ones(3, dtype=torch.float64), 0.1, 0.0)
    assert torch.equal(shifter.eta, own), "the shifter's direction is not replaced by the slice's"
    shifter.move(2.0)
    assert torch.equal(model.theta.detach(), shifter.theta + 2.0 * own)


def table_for(spec, steps=STEPS, dtypes=("float64",), slices=4):
    ds = load_dataset({"name": "sines", "n_train": 64, "n_test": 8} if spec.get("task") != "classification"
                      else {"name": "gaussian_mixture", "clusters": 3, "n_train": 120})
    torch.manual_seed(0)
    model = build_model(spec["model"], ds.input_shape, ds.output_dim)
    return bias_versus_step(model, ds.x_train, ds.y_train, ds.task, slices=slices, seed=0, batch_size=64,
                            steps=steps, dtypes=dtypes)


def test_a_quadratic_loss_has_no_truncation_error():
    """A linear model under MSE: L is exactly quadratic in theta, so every second difference is eta^T H eta."""
    table = table_for({"model": {"name": "mlp", "hidden": []}})
    rel = (table["error"].abs() / table["exact"].abs()).groupby(table["relative_step"]).max()
    assert rel[1e-1] < 1e-11 and rel[1e-2] < 1e-9, rel  # no truncation term: only float64 rounding is left
    assert rel[1e-4] > 100 * rel[1e-2], rel  # and rounding grows as eps L / h^2


def test_a_smooth_loss_has_an_error_falling_as_r_squared():
    table = table_for({"model": {"name": "mlp", "hidden": [8], "activation": "tanh"}}, steps=(1e-1, 1e-2))
    err = table.groupby("relative_step")["error"].apply(lambda e: np.abs(e).mean())
    assert err[1e-1] / err[1e-2] == pytest.approx(100, rel=0.2)


def test_float32_rounding_grows_as_the_step_shrinks():
    table = table_for({"model": {"name": "mlp", "hidden": [8], "activation": "tanh"}}, steps=(1e-3, 1e-5),
                      dtypes=("float32", "float64"))
    err = table.groupby(["dtype", "relative_step"])["error"].apply(lambda e: np.abs(e).mean())
    assert err[("float32", 1e-5)] > 100 * err[("float32", 1e-3)], "float32: eps L / h^2 dominates small steps"
    assert err[("float64", 1e-5)] < 1e-3 * err[("float32", 1e-5)], "rounding scales with eps (float64: 2e-16)"


def test_the_summary_reports_bias_and_its_tail_relative_to_the_trace():
    table = table_for({"model": {"name": "mlp", "hidden": []}}, steps=(1e-2,))
    summary = summarize(table, trace=float(table["exact"].mean()))
    assert list(summary["fraction_within_1pct"]) == [1.0] and summary["slices"].item() == 4
