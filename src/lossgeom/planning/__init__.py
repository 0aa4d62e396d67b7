"""Planning the workflow from a config, without Snakemake and (but for two model facts) without torch.

The Snakefile builds one :class:`Plan` with :func:`make_plan`; its rules only read it. ``lossgeom check-config`` plans
the same way, so a config it calls valid is one the workflow accepts.
"""

from .checks import SWEEP_CHECKS
from .plan import Plan, SweepPlan, download_key, make_plan

__all__ = ["SWEEP_CHECKS", "Plan", "SweepPlan", "download_key", "make_plan"]
