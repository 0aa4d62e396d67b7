"""Every name of ``lossgeom.__all__`` resolves (they load lazily, so a typo in ``_EXPORTS`` would only show at use),
and the companion papers' core functions and the operator API are among them."""

from __future__ import annotations

import importlib

import pytest

import lossgeom


@pytest.mark.parametrize("name", lossgeom.__all__)
def test_every_exported_name_resolves_to_its_modules_object(name):
    value = getattr(lossgeom, name)
    module = importlib.import_module(lossgeom._EXPORTS[name])
    assert value is getattr(module, name)
    assert name in dir(lossgeom)


def test_the_papers_core_functions_have_top_level_names():
    wanted = {
        "HessianOperator", "GaussNewtonOperator", "ModelOperator", "MatrixOperator", "to_scipy", "model_mode",
        "mode_connectivity", "barrier", "line", "bezier", "train_bend", "evaluate_path",  # mode connectivity
        "linear_cka", "mean_pairwise_cka",  # CKA
        "pair_faces", "star_faces", "train_connectors", "simplex_loss",  # simplices
        "SubspaceModel", "random_subspace", "restricted_hessian", "start_curvature", "trace_over_frobenius",
    }
    assert wanted <= set(lossgeom.__all__), sorted(wanted - set(lossgeom.__all__))
    with pytest.raises(AttributeError):
        lossgeom.not_a_name  # noqa: B018
