"""lossgeom: loss-landscape geometry with Hessian directions.

A small library behind the Snakemake workflow of this repository: dataset and model registries,
deterministic resumable training, and (in later stages) Hessian eigenpairs, projections and curvature.
It never imports Snakemake or notebook code, so it can be used on its own::

    from lossgeom import data, models
    ds = data.load_dataset({"name": "digits"})
    net = models.build_model({"name": "mlp", "hidden": [32]}, ds.input_shape, ds.output_dim)
"""

__version__ = "0.1.0"
