"""lossgeom: loss-landscape geometry with Hessian directions.

The library behind this repository's Snakemake workflow; it never imports Snakemake or notebook code.
Its subpackages follow the data flow::

    problems/   datasets, models, losses          training/  the resumable loop, evaluation, model files
    engine/     operator protocol, Hessian, Lanczos, trace, density
    geometry/   flat parameter vectors, directions, projected curvature, surfaces
    theory/     closed forms and predictors       checks/    rows with verdicts, one module per claim family
    stages/     one module per workflow step       io/        atomic writes, provenance, config validation

The names most users need are importable from the top level (loaded on first use, so that
``lossgeom.io.configcheck`` stays importable without torch)::

    >>> import torch
    >>> from lossgeom import MatrixOperator, extreme_eigenpairs, hutchinson_trace
    >>> op = MatrixOperator(torch.diag(torch.arange(-3.0, 7.0, dtype=torch.float64)))
    >>> pairs = extreme_eigenpairs(op, k_top=1, k_bottom=1, tol=1e-10)
    >>> round(pairs.top.values.item(), 8), round(pairs.bottom.values.item(), 8), pairs.converged
    (6.0, -3.0, True)

Operators of a model take tensors or any iterable of (x, y) batches, apply with ``@`` (a vector (N,) or rows
(k, N): sets of vectors are rows throughout) and convert to SciPy::

    >>> from lossgeom import HessianOperator
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> model = torch.nn.Linear(3, 2).double()
    >>> x, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
    >>> H = HessianOperator(model, torch.nn.functional.cross_entropy, DataLoader(TensorDataset(x, y), batch_size=4))
    >>> (H @ torch.ones(H.n_params, dtype=torch.float64)).shape, H.to_scipy().shape, model.training
    (torch.Size([8]), (8, 8), True)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    # problems and training
    "load_dataset": "lossgeom.problems.data",
    "build_model": "lossgeom.problems.models",
    "count_parameters": "lossgeom.problems.models",
    "trainable_parameters": "lossgeom.problems.models",
    "loss_function": "lossgeom.problems.losses",
    "train_experiment": "lossgeom.training.loop",
    "evaluate": "lossgeom.training.evaluation",
    "load_model": "lossgeom.training.checkpoints",
    # engine
    "LinearOperator": "lossgeom.engine.operator",
    "MatrixOperator": "lossgeom.engine.operator",
    "to_scipy": "lossgeom.engine.operator",
    "dense_matrix": "lossgeom.engine.operator",
    "ModelOperator": "lossgeom.engine.model_operator",
    "model_mode": "lossgeom.engine.model_operator",
    "HessianOperator": "lossgeom.engine.hessian",
    "dense_hessian": "lossgeom.engine.hessian",
    "extreme_eigenpairs": "lossgeom.engine.lanczos",
    "hutchinson_trace": "lossgeom.engine.trace",
    "krylov_trace": "lossgeom.engine.trace",
    "exact_trace": "lossgeom.engine.trace",
    "slq_density": "lossgeom.engine.density",
    "GaussNewtonOperator": "lossgeom.engine.gauss_newton",
    "dense_gauss_newton": "lossgeom.engine.gauss_newton",
    "gauss_newton_trace": "lossgeom.engine.gauss_newton",
    "EmpiricalFisherOperator": "lossgeom.engine.fisher",
    "dense_empirical_fisher": "lossgeom.engine.fisher",
    "relative_distance": "lossgeom.engine.frobenius",
    "logit_gradients": "lossgeom.engine.logit_gradients",
    "cosine_statistics": "lossgeom.engine.logit_gradients",
    "outlier_gap": "lossgeom.engine.outliers",
    # geometry
    "ParameterShifter": "lossgeom.geometry.parameters",
    "random_direction": "lossgeom.geometry.directions",
    "filter_normalize": "lossgeom.geometry.directions",
    "orthogonalize": "lossgeom.geometry.directions",
    "projected_hessian": "lossgeom.geometry.curvature",
    "random_projections": "lossgeom.geometry.curvature",
    "principal_curvatures": "lossgeom.geometry.curvature",
    "compute_surface": "lossgeom.geometry.surfaces",
    "random_subspace": "lossgeom.geometry.subspaces",
    "restricted_hessian": "lossgeom.geometry.subspaces",
    "gradient_overlap": "lossgeom.geometry.subspaces",
    "trace_over_frobenius": "lossgeom.geometry.subspaces",
    # mode connectivity: paths, barriers, Bezier fits (Garipov et al. 2018; Yang et al. 2021)
    "line": "lossgeom.geometry.paths",
    "bezier": "lossgeom.geometry.paths",
    "barrier": "lossgeom.geometry.paths",
    "mode_connectivity": "lossgeom.geometry.paths",
    "train_bend": "lossgeom.geometry.paths",
    "flat_loss": "lossgeom.geometry.paths",
    "evaluate_path": "lossgeom.geometry.paths",
    "recompute_batchnorm": "lossgeom.geometry.paths",
    # representation similarity (CKA)
    "linear_cka": "lossgeom.geometry.similarity",
    "mean_pairwise_cka": "lossgeom.geometry.similarity",
    # low-loss simplices (Fort & Jastrzebski 2019; Benton et al. 2021)
    "pair_faces": "lossgeom.geometry.simplices",
    "star_faces": "lossgeom.geometry.simplices",
    "point_in_face": "lossgeom.geometry.simplices",
    "train_connectors": "lossgeom.geometry.simplices",
    "simplex_loss": "lossgeom.geometry.simplices",
    # training in random subspaces (Li et al. 2018; Fort & Scherlis 2019)
    "SubspaceModel": "lossgeom.training.subspace",
    "start_curvature": "lossgeom.training.subspace",
    # theory (the checks' predictors)
    "eigenbasis_projections": "lossgeom.theory.projections",
    "saddle_fraction_eigenbasis": "lossgeom.theory.projections",
    "saddle_fraction_clt": "lossgeom.theory.projections",
    "saddle_fraction_spiked": "lossgeom.theory.projections",
    "saddle_spectrum": "lossgeom.theory.spectra",
    "quadratic_operator": "lossgeom.theory.spectra",
    # checks
    "CheckRow": "lossgeom.checks.rows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lossgeom' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
