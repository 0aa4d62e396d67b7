"""The dtype and device tier: the engine, the surfaces and training resume, in float32 and float64, on every
device present (CUDA when there is one), each against a dense float64 reference.

Tolerances follow the arithmetic: float64 results agree with the reference to ~1e-10 relative; float32 ones
to ~1e-4 (a few hundred ulps of 1.2e-7, from sums over thousands of terms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossgeom.engine.density import slq_density
from lossgeom.engine.hessian import HessianOperator, dense_hessian
from lossgeom.engine.lanczos import extreme_eigenpairs
from lossgeom.engine.operator import MatrixOperator
from lossgeom.geometry.surfaces import compute_surface
from lossgeom.problems.data import load_dataset
from lossgeom.problems.losses import loss_function
from lossgeom.problems.models import build_model
from lossgeom.training.loop import train_experiment
from lossgeom.training.checkpoints import load_file

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = {"float32": (torch.float32, 1e-4), "float64": (torch.float64, 1e-10)}
CASES = [(d, t) for d in DEVICES for t in DTYPES]
ids = [f"{d}-{t}" for d, t in CASES]


def known_spectrum(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A symmetric matrix Q diag(lam) Q^T with a random orthogonal Q, and its eigenvalues (ascending), in float64."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.cat([torch.linspace(-0.5, 1.0, n - 3, dtype=torch.float64), torch.tensor([3.0, 5.0, 8.0], dtype=torch.float64)])
    return Q @ torch.diag(lam) @ Q.T, lam


@pytest.fixture(scope="module")
def small_problem():
    ds = load_dataset({"name": "sines", "n_train": 96, "n_test": 32})
    torch.manual_seed(0)
    model = build_model({"name": "mlp", "hidden": [8], "activation": "tanh"}, ds.input_shape, ds.output_dim)
    H = dense_hessian(model, loss_function(ds.task), ds.x_train, ds.y_train)
    return model, ds, H


@pytest.mark.parametrize("device, dtype_name", CASES, ids=ids)
def test_hessian_vector_products_match_the_dense_float64_hessian(small_problem, device, dtype_name):
    model, ds, H = small_problem
    dtype, rtol = DTYPES[dtype_name]
    op = HessianOperator(model.to(device), loss_function(ds.task), ds.x_train.to(device), ds.y_train.to(device),
                         batch_size=40, dtype=dtype)
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    hv = op.matvec(v.to(device, dtype)).double().cpu()
    assert op.dtype == dtype and hv.device.type == "cpu"
    torch.testing.assert_close(hv, H @ v, rtol=rtol * 10, atol=rtol * 10 * float((H @ v).abs().max()))
    model.to("cpu")


@pytest.mark.parametrize("device, dtype_name", CASES, ids=ids)
def test_lanczos_with_thick_restarts_finds_both_ends(device, dtype_name):
    dtype, rtol = DTYPES[dtype_name]
    A, lam = known_spectrum(200)
    op = MatrixOperator(A.to(device, dtype))
    res = extreme_eigenpairs(op, k_top=3, k_bottom=2, tol=max(rtol, 1e-9), max_basis=16, max_hvps=4000)
    assert res.restarts >= 1, "the basis is small enough to force thick restarts"
    assert res.converged
    scale = float(lam.abs().max())
    np.testing.assert_allclose(res.top.values.numpy(), lam.flip(0)[:3].numpy(), rtol=0, atol=50 * rtol * scale)
    np.testing.assert_allclose(res.bottom.values.numpy(), lam[:2].numpy(), rtol=0, atol=50 * rtol * scale)
    assert res.top.vectors.dtype == dtype and res.top.vectors.device.type == device


@pytest.mark.parametrize("device, dtype_name", CASES, ids=ids)
def test_slq_pads_an_early_breakdown_and_keeps_its_moments_exact(device, dtype_name):
    """Three distinct eigenvalues: Lanczos breaks down after 3 steps of the 10 asked; the Gauss rule of each
    probe then reproduces its first moments exactly (tr(H)/N in expectation) and the unused nodes are NaN."""
    dtype, rtol = DTYPES[dtype_name]
    values = torch.tensor([-1.0] * 10 + [0.5] * 20 + [2.0] * 30, dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    Q, _ = torch.linalg.qr(torch.randn(60, 60, generator=g, dtype=torch.float64))
    op = MatrixOperator((Q @ torch.diag(values) @ Q.T).to(device, dtype))
    density = slq_density(op, probes=4, steps=10, seed=3)
    assert np.isnan(density.nodes[:, 3:]).all() and np.isfinite(density.nodes[:, :3]).all()
    np.testing.assert_allclose(density.weights[:, :3].sum(axis=1), 1.0, rtol=0, atol=100 * rtol)
    found = np.unique(np.round(density.nodes[:, :3], 3))
    np.testing.assert_allclose(found, [-1.0, 0.5, 2.0], atol=1e-3)


@pytest.mark.parametrize("device, dtype_name", CASES, ids=ids)
def test_surfaces_match_a_float64_evaluation(small_problem, device, dtype_name, tmp_path):
    model, ds, _ = small_problem
    dtype, rtol = DTYPES[dtype_name]
    g = torch.Generator().manual_seed(4)
    n = sum(p.numel() for p in model.parameters())
    eta, delta = (torch.randn(n, generator=g, dtype=torch.float64) * 0.1 for _ in range(2))
    a, b = np.linspace(-1, 1, 5), np.linspace(-1, 1, 3)
    moved = model.to(device, dtype)
    splits = {"train": (ds.x_train.to(device, dtype), ds.y_train.to(device, dtype))}
    values, _ = compute_surface(moved, splits, ds.task, eta.to(device, dtype), delta.to(device, dtype), a, b,
                                tiles_dir=tmp_path, key="k", progress=False)
    reference = model.to("cpu", torch.float64)
    theta = torch.cat([p.detach().reshape(-1) for p in reference.parameters()])
    for i, j in [(0, 0), (2, 1), (4, 2)]:
        torch.nn.utils.vector_to_parameters(theta + a[i] * eta + b[j] * delta, reference.parameters())
        with torch.no_grad():
            loss = float(((reference(ds.x_train.double()) - ds.y_train.double()) ** 2).mean())
        assert values["train_loss"][i, j] == pytest.approx(loss, rel=10 * rtol)
    torch.nn.utils.vector_to_parameters(theta, reference.parameters())
    model.to("cpu", torch.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_training_interrupted_and_resumed_is_bitwise_equal_on_the_device(device, tmp_path):
    spec = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 96, "n_test": 32},
            "model": {"name": "mlp", "hidden": [8]}, "train": {"epochs": 3, "batch_size": 16, "device": device}}
    straight = train_experiment("s", spec, tmp_path / "straight.pt", progress=False)

    def stop_after_first_epoch(history):
        if len(history) == 1:
            raise KeyboardInterrupt  # after the epoch's checkpoint is written, as a kill would find it

    with pytest.raises(KeyboardInterrupt):
        train_experiment("r", spec, tmp_path / "resumed.pt", progress=False, on_epoch=stop_after_first_epoch)
    assert load_file(tmp_path / "resumed.pt", "lossgeom-checkpoint-v1")["epoch"] == 1
    resumed = train_experiment("r", spec, tmp_path / "resumed.pt", progress=False)
    for (name, p), (_, q) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(p, q), name
