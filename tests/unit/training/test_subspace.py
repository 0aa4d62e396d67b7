"""Training in a random affine subspace: the weights stay in theta_0 + span(P), the restricted Hessian at the start
equals B H B^T from a dense float64 Hessian, the saved model is a plain one, and bad dimensions are refused."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from lossgeom.engine.hessian import dense_hessian
from lossgeom.errors import ConfigError
from lossgeom.problems.data import load_dataset
from lossgeom.problems.losses import loss_function
from lossgeom.problems.models import build_model
from lossgeom.training.loop import TrainSettings, model_size, train_experiment
from lossgeom.training.subspace import SubspaceModel, start_curvature, subspace_seed

DATA = {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 60, "n_test": 30}
MODEL = {"name": "mlp", "hidden": [6], "activation": "tanh", "init_scale": 2.0}


def spec(d, epochs=2):
    return {"dataset": DATA, "model": MODEL,
            "train": {"epochs": epochs, "batch_size": 20, "lr": 0.1, "device": "cpu", "subspace_dim": d}}


def base_model():
    torch.manual_seed(0)
    ds = load_dataset(DATA)
    return build_model(MODEL, ds.input_shape, ds.output_dim), ds


def test_the_restricted_hessian_at_the_start_is_p_transpose_h_p():
    model, ds = base_model()
    wrapped = SubspaceModel(model, 5, seed=3)
    loss_fn = loss_function(ds.task)
    result = start_curvature(wrapped, loss_fn, ds.x_train, ds.y_train)
    plain = copy.deepcopy(model).double().requires_grad_(True)  # the wrapper froze the base's own parameters
    H = dense_hessian(plain, loss_fn, ds.x_train.double(), ds.y_train)
    B = wrapped.basis.double()  # rows (d, N)
    assert B.shape == (5, H.shape[0])
    Hd = B @ H @ B.T
    assert result["trace"] == pytest.approx(float(torch.trace(Hd)), rel=1e-8)
    assert result["frobenius"] == pytest.approx(float(torch.linalg.matrix_norm(Hd)), rel=1e-8)
    assert result["ratio"] == pytest.approx(float(torch.trace(Hd) / torch.linalg.matrix_norm(Hd)), rel=1e-8)
    assert abs(result["ratio"]) <= math.sqrt(5) and result["ratio_bound"] == math.sqrt(5)
    assert result["lambda_max"] == pytest.approx(float(torch.linalg.eigvalsh(Hd)[-1]), rel=1e-8)
    batched = start_curvature(wrapped, loss_fn, ds.x_train, ds.y_train, batch_size=7)  # uneven batches, weighted
    assert batched["trace"] == pytest.approx(result["trace"], rel=1e-10)
    assert batched["ratio"] == pytest.approx(result["ratio"], rel=1e-10)


def test_training_moves_only_within_the_subspace_and_saves_a_plain_model(tmp_path):
    d = 4
    result = train_experiment("sub", spec(d), tmp_path / "ck.pt", progress=False)
    model, ds = base_model()  # theta_0: the same seed and spec build the same initial weights
    assert type(result.model) is type(model)  # a plain MLP, loadable by every later stage
    flat = lambda m: torch.cat([p.detach().reshape(-1) for p in m.parameters()]).double()  # noqa: E731
    theta0, theta = flat(model), flat(result.model)
    P = SubspaceModel(model, d, subspace_seed(0)).projection.double()
    c = torch.linalg.lstsq(P, theta - theta0).solution
    assert torch.linalg.vector_norm(theta - theta0) > 1e-3  # it did train
    assert torch.allclose(P @ c, theta - theta0, atol=1e-5)  # and stayed in theta_0 + span(P)
    assert result.subspace["dim"] == d and -2.0 <= result.subspace["ratio"] <= 2.0
    assert all(p.requires_grad for p in result.model.parameters())


class Killed(Exception):
    pass


def test_a_resumed_subspace_run_ends_bitwise_equal(tmp_path):
    whole = train_experiment("sub", spec(3, epochs=3), tmp_path / "a.pt", progress=False)

    def kill_after_first_epoch(history):
        raise Killed  # after the epoch's checkpoint was written, as a job killed then

    with pytest.raises(Killed):
        train_experiment("sub", spec(3, epochs=3), tmp_path / "b.pt", progress=False, on_epoch=kill_after_first_epoch)
    resumed = train_experiment("sub", spec(3, epochs=3), tmp_path / "b.pt", progress=False)
    assert len(resumed.history) == 3
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert resumed.subspace == whole.subspace


def test_bad_subspace_dimensions_name_the_key():
    n = model_size(spec(1))
    with pytest.raises(ConfigError, match=rf"train.subspace_dim {n + 1} exceeds the model's {n} parameters"):
        train_experiment("sub", spec(n + 1), "/nonexistent/ck.pt", progress=False)
    with pytest.raises(ConfigError, match="train.subspace_dim: -1 is out of range"):
        TrainSettings(subspace_dim=-1)


def test_the_stored_projection_keeps_the_former_column_layout_bitwise():
    """Rows are the library's orientation (``basis``, (d, N)); the buffer keeps P = B^T (N, d), contiguous, with
    the numbers of the former column form, so checkpoints load and theta_0 + P c is bitwise unchanged."""
    from lossgeom.training.subspace import random_subspace

    model, _ = base_model()
    wrapped = SubspaceModel(model, 5, seed=3)
    n = sum(p.numel() for p in model.parameters())
    P = torch.randn(n, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    P = (P / torch.linalg.vector_norm(P, dim=0, keepdim=True)).to(wrapped.projection.dtype)
    assert wrapped.projection.is_contiguous() and torch.equal(wrapped.projection, P)
    assert wrapped.basis.shape == (5, n) and torch.equal(wrapped.basis, random_subspace(n, 5, 3).to(P.dtype))
