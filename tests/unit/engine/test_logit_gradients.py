"""Per-example logit gradients against per-example Jacobians from plain autograd, and the cosine groups against a
brute-force loop over pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from lossgeom.engine.logit_gradients import GROUPS, cosine_statistics, logit_gradients
from lossgeom.problems.models import trainable_parameters
from tests.unit.curvature_cases import case, one_fast


def _jacobian_of_one(model, example):
    named = trainable_parameters(model)
    rows = []
    out = model(example.unsqueeze(0)).squeeze(0)
    for c in range(len(out)):
        grads = torch.autograd.grad(out[c], [p for _, p in named], retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


@pytest.mark.parametrize("name", one_fast("cnn_digits", ["mlp_relu_digits", "cnn_digits", "batchnorm_digits"]))
def test_logit_gradients_equal_per_example_jacobians(name):
    c = case(name)
    grads = logit_gradients(c.model, c.x[:9], batch_size=4)  # batches of 4, 4, 1
    assert grads.shape == (9, 10, sum(p.numel() for _, p in trainable_parameters(c.model)))
    for i in (0, 4, 8):
        assert torch.allclose(grads[i], _jacobian_of_one(c.model, c.x[i]), atol=1e-12)


def test_cosine_groups_equal_a_loop_over_pairs():
    g = torch.Generator().manual_seed(0)
    grads = torch.randn(7, 3, 5, generator=g, dtype=torch.float64)
    grads[:, 0] += 2.0  # logit 0's gradients share a direction
    labels = torch.tensor([0, 0, 1, 2, 1, 0, 2])
    found = {group: [] for group in GROUPS}
    for (i, c), (j, d) in itertools.product(itertools.product(range(7), range(3)), repeat=2):
        if i == j:
            continue
        cos = float(torch.nn.functional.cosine_similarity(grads[i, c], grads[j, d], dim=0))
        group = "different_logits" if c != d else (
            "same_logit_same_class" if labels[i] == labels[j] else "same_logit_different_class")
        found[group].append(cos)
    stats = cosine_statistics(grads, labels)
    for group in GROUPS:
        assert stats[group]["pairs"] == len(found[group])
        assert stats[group]["mean"] == pytest.approx(np.mean(found[group]), abs=1e-12)
        assert stats[group]["std"] == pytest.approx(np.std(found[group], ddof=1), abs=1e-12)
