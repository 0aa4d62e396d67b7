"""Cross-library checks (issue 28, item 3): in float64 on small models, our H v, G v, eigenvalues and traces equal
curvlinops' and hessian-eigenthings' to rounding.

The peers are in the ``bench`` dependency group (``uv sync --group bench``); without them every test here is
skipped with the reason. All are in the slow tier. The peers' operators see the data as one batch: hessian-eigenthings
averages over batches with equal weights, so one batch makes its operator the mean over all examples, as ours is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lossgeom.engine.gauss_newton import GaussNewtonOperator
from lossgeom.engine.hessian import HessianOperator
from lossgeom.engine.lanczos import extreme_eigenpairs
from lossgeom.engine.trace import exact_trace
from tests.unit.curvature_cases import case

pytestmark = pytest.mark.slow

curvlinops = pytest.importorskip("curvlinops", reason="curvlinops-for-pytorch (bench group) is not installed")
he = pytest.importorskip("hessian_eigenthings", reason="hessian-eigenthings (bench group) is not installed")

NAMES = ["mlp_tanh_digits", "mlp_tanh_sines", "cnn_digits", "batchnorm_digits"]


class _MeanSquaredError(nn.Module):
    """lossgeom's regression loss as a module with ``reduction``, which curvlinops reads to weight batches."""

    reduction = "mean"

    def forward(self, prediction, target):
        return (prediction - target).square().mean()


def _loss_module(c):
    return nn.CrossEntropyLoss() if c.y.dtype == torch.int64 else _MeanSquaredError()


def _params(c):
    return [p for p in c.model.parameters() if p.requires_grad]


def _curvlinops(c, kind="hessian"):
    cls = curvlinops.HessianLinearOperator if kind == "hessian" else curvlinops.GGNLinearOperator
    return cls(c.model, _loss_module(c), _params(c), [(c.x, c.y)])


def _eigenthings(c, kind="hessian"):
    if kind == "hessian":
        return he.HessianOperator(c.model, [(c.x, c.y)], he.supervised_loss(c.loss_fn))
    return he.GGNOperator(c.model, [(c.x, c.y)], he.supervised_forward, he.supervised_loss_of_output(c.loss_fn))


def _vectors(n, k=3, seed=0):
    return torch.randn(k, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _close(a, b, scale):
    """Equal to rounding: float64 products of these sizes agree to ~1e-15 relative; 1e-11 leaves headroom."""
    return float((a.detach() - b.detach()).abs().max()) <= 1e-11 * scale


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_products_equal_the_peers(name, kind):
    c = case(name)
    ours = (HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64) if kind == "hessian"
            else GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64))  # several batches, weighted
    theirs_cl, theirs_he = _curvlinops(c, kind), _eigenthings(c, kind)
    for v in _vectors(ours.n_params):
        mine = ours.matvec(v)
        scale = float(mine.abs().max()) + float(c.H.abs().max()) * float(v.abs().max())
        assert _close(mine, (theirs_cl @ v).reshape(-1), scale)
        assert _close(mine, theirs_he.matvec(v), scale)
    assert c.model.training is False  # nobody left the model in train mode


@pytest.mark.parametrize("name", NAMES)
def test_extreme_eigenvalues_equal_the_peers(name):
    """Our Lanczos against hessian-eigenthings' (a full Krylov space: exact) and SciPy's ARPACK on curvlinops."""
    from scipy.sparse.linalg import eigsh

    c = case(name)
    n = sum(p.numel() for p in _params(c))
    ours = extreme_eigenpairs(HessianOperator(c.model, c.loss_fn, c.x, c.y), k_top=3, k_bottom=2, tol=1e-12,
                              max_basis=n, max_hvps=20 * n)
    assert ours.converged
    scale = float(ours.top.values.abs().max())
    top_he = he.lanczos(_eigenthings(c), k=3, max_iter=n - 1, which="LA", seed=0, reorthogonalize=True).eigenvalues
    bottom_he = he.lanczos(_eigenthings(c), k=2, max_iter=n - 1, which="SA", seed=0, reorthogonalize=True).eigenvalues
    lin = _curvlinops(c).to_scipy(dtype=np.float64)
    v0 = np.random.default_rng(0).standard_normal(n)
    top_cl = np.sort(eigsh(lin, k=3, which="LA", tol=0, v0=v0, return_eigenvectors=False))[::-1]
    bottom_cl = np.sort(eigsh(lin, k=2, which="SA", tol=0, v0=v0, return_eigenvectors=False))
    for theirs_top, theirs_bottom in ((top_he, bottom_he), (torch.from_numpy(top_cl.copy()), torch.from_numpy(bottom_cl.copy()))):
        assert torch.allclose(ours.top.values, theirs_top.to(torch.float64), atol=1e-10 * scale, rtol=0)
        assert torch.allclose(ours.bottom.values, theirs_bottom.to(torch.float64), atol=1e-10 * scale, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_traces_equal_the_peers(name):
    """The exact trace from N products (sum of e_i^T H e_i) of our operator and of each peer's, and of the dense H."""
    c = case(name)
    ours = exact_trace(HessianOperator(c.model, c.loss_fn, c.x, c.y))
    n = c.H.shape[0]
    scale = float(c.H.abs().sum())  # bounds |tr| and each product's rounding
    eye = torch.eye(n, dtype=torch.float64)
    cl = float(torch.einsum("ij,ij->", eye, _curvlinops(c) @ eye))
    op_he = _eigenthings(c)
    eigenthings_trace = sum(float(op_he.matvec(e)[i]) for i, e in enumerate(eye))
    assert abs(ours - float(torch.trace(c.H))) <= 1e-11 * scale
    assert abs(ours - cl) <= 1e-11 * scale
    assert abs(ours - eigenthings_trace) <= 1e-11 * scale
