"""Paths between solutions against closed forms: the Bezier curve's ends and midpoint, the bend that minimizes the
expected loss of a quadratic, the barrier of a double well removed by a trained bend, Yang et al.'s mc sign."""

from __future__ import annotations

import itertools

import pytest
import torch

from lossgeom.geometry.paths import barrier, bezier, line, mode_connectivity, train_bend


def test_the_curve_passes_through_its_ends_and_bends_toward_b():
    w1, b, w2 = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 5.0]), torch.tensor([-3.0, 0.0])
    assert torch.equal(bezier(w1, w2, b, 0.0), w1) and torch.equal(bezier(w1, w2, b, 1.0), w2)
    assert torch.allclose(bezier(w1, w2, b, 0.5), (w1 + w2) / 4 + b / 2)
    assert torch.allclose(bezier(w1, w2, (w1 + w2) / 2, 0.3), line(w1, w2, 0.3))  # the midpoint bend: the line


def test_the_trained_bend_of_a_quadratic_is_the_closed_form_optimum():
    # L(w) = 1/2 ||w - c||^2: E_t L(gamma(t)) is minimized at b* = (5/2) c - (3/4)(w1 + w2)
    c = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    w1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    w2 = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    optimum = 2.5 * c - 0.75 * (w1 + w2)
    loss_of = lambda w, batch: 0.5 * (w - c).pow(2).sum()  # noqa: E731
    bend = train_bend(loss_of, w1, w2, range(6000), lr=0.005, momentum=0.9, seed=3)
    # E_t L is a quadratic in b with Hessian E[beta^2] I = 2/15 I; one t per step leaves SGD noise of a few percent
    assert torch.linalg.vector_norm(bend - optimum) < 0.05 * torch.linalg.vector_norm(optimum)
    expected = lambda b: float(torch.stack([loss_of(bezier(w1, w2, b, t), None)  # noqa: E731
                                            for t in torch.linspace(0, 1, 2001, dtype=torch.float64)]).mean())
    assert expected(optimum) <= expected(bend) <= expected((w1 + w2) / 2)


def test_a_trained_bend_removes_the_barrier_of_a_double_well():
    loss_of = lambda w, batch: (w.pow(2).sum() - 1) ** 2  # noqa: E731  minima: the unit circle
    w1, w2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-1.0, 0.0], dtype=torch.float64)
    ts = torch.linspace(0, 1, 21, dtype=torch.float64)
    straight = barrier(ts, [float(loss_of(line(w1, w2, t), None)) for t in ts])
    assert straight == pytest.approx(1.0)  # the line crosses w = 0, where L = 1
    # from just off the midpoint (at it, the gradient in the bend's free direction is zero by symmetry)
    bend = train_bend(loss_of, w1, w2, range(3000), lr=0.01, seed=0, bend=torch.tensor([0.0, 0.1], dtype=torch.float64))
    curved = barrier(ts, [float(loss_of(bezier(w1, w2, bend, t), None)) for t in ts])
    assert curved < 0.1 * straight and abs(float(bend[1])) > 1.0


def test_barrier_needs_the_path_in_order():
    with pytest.raises(ValueError, match="increasing order"):
        barrier([0.0, 0.7, 0.5, 1.0], [0, 1, 2, 0])


# mc worked by hand: the ends' mean m = (e_0 + e_last)/2; u the interior point farthest from m; mc = m - e_u
@pytest.mark.parametrize("errors, mc", [([2.0, 20.0, 40.0, 20.0, 4.0], -37.0),  # m = 3, u: 40. A barrier: poorly connected
                                        ([10.0, 6.0, 2.0, 6.0, 10.0], 8.0),     # m = 10, u: 2. The path beats its ends
                                        ([3.0, 3.0, 3.0, 3.0, 3.0], 0.0),       # flat: well connected
                                        ([2.0, 9.0, 1.0, 6.0], -5.0),           # m = 4: 9 is 5 away, 1 only 3
                                        ([2.0, 5.0, 0.5, 6.0], 3.5),            # m = 4: the dip (3.5 away) beats the bump (1)
                                        ([0.0, 3.0, 4.0, 10.0], 2.0)])          # m = 5: an end is 5 away; only 3 and 4 count
def test_mode_connectivity_sign_convention(errors, mc):
    """Yang et al.: mc < 0 a barrier, mc > 0 a path better than its ends; each value against one worked by hand."""
    assert mode_connectivity(errors) == pytest.approx(mc, abs=1e-12)


def test_mode_connectivity_is_unchanged_by_reversing_the_path():
    for errors in itertools.permutations([1.0, 5.0, 2.0, 9.0, 4.0]):
        assert mode_connectivity(errors) == mode_connectivity(errors[::-1])


@pytest.mark.parametrize("errors", [[10.0, 12.5, 7.5, 10.0], [10.0, 7.5, 12.5, 10.0],  # a bump and a dip tied: 2.5 each
                                    [4.0, 6.0, 2.0, 6.0, 2.0, 4.0], [10.0, 12.5, 10.0, 7.5 + 1e-13, 10.0]])
def test_mode_connectivity_ties_count_the_barrier_in_either_direction(errors):
    """Tied |e - m| of both signs: the barrier counts (mc = -2.5 or -2), the same for the path and its reverse;
    the first tied point would give +2.5 one way and -2.5 the other."""
    mc = mode_connectivity(errors)
    assert mc == mode_connectivity(errors[::-1]) == pytest.approx(-2.5 if errors[0] == 10.0 else -2.0, abs=1e-12)


def test_evaluate_path_equals_models_built_at_each_point_and_leaves_the_model_alone():
    from lossgeom.geometry.paths import evaluate_path
    from lossgeom.training.evaluation import evaluate

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    x = torch.randn(30, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (30,))
    w1 = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    w2 = w1 + torch.randn_like(w1)
    ts = [0.0, 0.5, 1.0]
    rows = evaluate_path(model, [line(w1, w2, t) for t in ts], {"train": (x, y)}, "classification")
    for t, row in zip(ts, rows):
        built = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
        torch.nn.utils.vector_to_parameters(line(w1, w2, t), built.parameters())
        assert row == pytest.approx({f"train_{k}": v for k, v in evaluate(built, x, y, "classification", 64).items()})
    assert torch.equal(torch.nn.utils.parameters_to_vector(model.parameters()), w1)
    with pytest.raises(ValueError, match="trainable parameters"):
        evaluate_path(model, [w1[:-1]], {"train": (x, y)}, "classification")


def test_batchnorm_statistics_are_recomputed_at_the_point():
    from lossgeom.geometry.paths import recompute_batchnorm

    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2)).double()
    x = 5.0 + 2.0 * torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert recompute_batchnorm(model, x, batch_size=16)  # four equal batches: the mean of the batch means
    bn = model[0]
    assert torch.allclose(bn.running_mean, x.mean(0), atol=1e-12)
    batch_vars = torch.stack([x[i : i + 16].var(0, unbiased=True) for i in range(0, 64, 16)])
    assert torch.allclose(bn.running_var, batch_vars.mean(0), atol=1e-12)
    assert bn.momentum == 0.1  # the layer's own momentum is restored
    assert not recompute_batchnorm(torch.nn.Linear(3, 2), x, 16)


def test_a_diverging_bend_fit_stops_with_one_error_naming_it():
    w1, w2 = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    loss_of = lambda w, batch=None: (w.sum() * float("inf"))  # noqa: E731
    with pytest.raises(FloatingPointError, match="Bezier bend's fit diverged at step 1"):
        train_bend(loss_of, w1, w2, range(5), lr=0.1)
