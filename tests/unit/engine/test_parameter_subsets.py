"""Operators on a subset of the parameters (``params=``): the diagonal block of the dense H and G for the named
parameters, in float64 on a small trained model; names of modules select their parameters; unknown names fail. The
empirical Fisher operator against the dense one from per-example gradients."""

from __future__ import annotations

import pytest
import torch

from lossgeom.engine.fisher import EmpiricalFisherOperator, dense_empirical_fisher
from lossgeom.engine.gauss_newton import GaussNewtonOperator, dense_gauss_newton
from lossgeom.engine.hessian import HessianOperator
from lossgeom.engine.lanczos import extreme_eigenpairs
from tests.unit.curvature_cases import case, one_fast


def _block(c, dense: torch.Tensor, names: list[str]) -> torch.Tensor:
    """The rows and columns of ``dense`` (all trainable parameters, in order) that belong to ``names``."""
    index, start = [], 0
    for n, p in c.model.named_parameters():
        if p.requires_grad:
            if n in names:
                index.extend(range(start, start + p.numel()))
            start += p.numel()
    index = torch.tensor(index)
    return dense[index][:, index]


def test_a_layer_gives_the_diagonal_block_of_h_and_g():
    c = case("mlp_tanh_digits")
    names = [n for n, _ in c.model.named_parameters()]
    layer = names[0].rsplit(".", 1)[0]  # the first Linear: its weight and bias
    H = HessianOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64, params=layer)
    assert H.names == [n for n in names if n.startswith(layer + ".")]
    block = _block(c, c.H, H.names)
    v = torch.randn(H.n_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scale = float(torch.linalg.matrix_norm(c.H, ord=2))
    assert H.n_params == len(block)
    assert torch.allclose(H @ v, block @ v, atol=1e-11 * scale * float(v.norm()), rtol=0)
    # its spectrum: the block's eigenvalues (per-layer spectra)
    top = extreme_eigenpairs(H, k_top=2, k_bottom=1, tol=1e-10).top.values
    assert torch.allclose(top, torch.linalg.eigvalsh(block).flip(0)[:2], atol=1e-8 * scale, rtol=0)
    G = GaussNewtonOperator(c.model, c.loss_fn, c.x, c.y, params=[names[-1]])  # one parameter by its own name
    u = torch.randn(G.n_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    G_block = _block(c, dense_gauss_newton(c.model, c.loss_fn, c.x, c.y), [names[-1]])
    assert torch.allclose(G @ u, G_block @ u, atol=1e-11 * scale * float(u.norm()), rtol=0)
    # the gradient restricted to the subset, and every parameter left as it was
    full = HessianOperator(c.model, c.loss_fn, c.x, c.y).gradient()
    assert torch.allclose(H.gradient(), full[: H.n_params], atol=1e-14, rtol=0)
    assert all(p.requires_grad for p in c.model.parameters())


def test_unknown_names_fail_with_the_model_names():
    c = case("mlp_tanh_digits")
    with pytest.raises(ValueError, match="names no trainable parameter"):
        HessianOperator(c.model, c.loss_fn, c.x, c.y, params=["nonexistent"])


@pytest.mark.parametrize("name", one_fast("mlp_tanh_digits", ["mlp_tanh_digits", "mlp_tanh_sines", "batchnorm_digits"]))
def test_empirical_fisher_equals_the_dense_one_from_per_example_gradients(name):
    c = case(name)
    dense = dense_empirical_fisher(c.model, c.loss_fn, c.x, c.y)
    F = EmpiricalFisherOperator(c.model, c.loss_fn, c.x, c.y, batch_size=64)  # several batches, weighted
    V = torch.randn(3, F.n_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scale = float(torch.linalg.matrix_norm(dense, ord=2))
    assert torch.allclose(F @ V, V @ dense, atol=1e-11 * scale * float(V.norm()), rtol=0)
    assert torch.linalg.eigvalsh(dense).min() > -1e-12 * scale  # positive semi-definite
    # a layer's block, and its top eigenvalue through the same Lanczos as the Hessian's
    layer = next(iter(dict(c.model.named_parameters()))).rsplit(".", 1)[0]
    block = EmpiricalFisherOperator(c.model, c.loss_fn, c.x, c.y, params=layer)
    top = extreme_eigenpairs(block, k_top=1, k_bottom=0, tol=1e-10).top.values
    assert torch.allclose(top, torch.linalg.eigvalsh(_block(c, dense, block.names))[-1:], atol=1e-8 * scale, rtol=0)
