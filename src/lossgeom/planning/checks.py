"""Which checks a sweep declares, and what each needs of the sweep (its ``checks:`` list, validated).

A sweep's rows come from the checks it lists, never from a guess at its grid keys. Each kind reads one of the sweep's
tables and judges a family of claims:

- ``local``: Hessian phenomena along training (Sagun et al.; Fort & Ganguli), from trajectory.csv; needs the local
  geometry and two snapshots at least;
- ``spectra``: bulk and outliers across the data or the width, from runs.csv; needs the local geometry (the dense
  spectra) and a grid over dataset.clusters, dataset.separation or model.hidden;
- ``goldilocks``: the Goldilocks zone of subspace training, from runs.csv; needs a grid over model.init_scale and
  train.subspace_dim;
- ``saddle``: the saddle early in training in Hessian vs random directions; needs the local geometry and three
  snapshots at least (the most negative eigenpair is always computed: the schema asks k_bottom >= 1);
- ``trends``: learning rate, width and L2 move the curvature alike (Fort & Jastrzebski), across the sweeps declaring
  it (two at least); each needs Hessians and a grid that varies one of train.lr, model.hidden, train.weight_decay
  (besides train.seed);
- ``connectivity``: how the seeds connect (lines, Bezier curves, simplices), rows in the summary and figure F13;
  needs the connectivity stage;
- ``taxonomy``: Yang et al.'s phase diagram, figure F15; needs Hessians, connectivity, a grid of a width, one
  second axis and seeds with two values each, and no snapshots.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

SWEEP_CHECKS = ("local", "spectra", "goldilocks", "saddle", "trends", "connectivity", "taxonomy")
# The checks that judge one table of their sweep (rule check_sweep): the table each reads.
TABLE_CHECKS = {"local": "trajectory", "spectra": "runs", "goldilocks": "runs"}
# The order of the sweeps' rows files in the summary (trends, across sweeps, last).
SUMMARY_ORDER = ("local", "spectra", "saddle", "goldilocks", "connectivity", "taxonomy")

SPECTRA_KEYS = ("dataset.clusters", "dataset.separation", "model.hidden")
GOLDILOCKS_KEYS = ("model.init_scale", "train.subspace_dim")
TREND_KEYS = ("train.lr", "model.hidden", "train.weight_decay")


def varied_keys(grid: Mapping[str, list]) -> list[str]:
    """The grid's keys with two values or more, seeds left out (what a sweep compares across)."""
    return [key for key, values in grid.items() if key != "train.seed" and len(values) > 1]


def _local(sweep: Any) -> str | None:
    if sweep.local is None:
        return "needs the local geometry (local: true, or a mapping of local settings)"
    if len(sweep.snapshots) < 2:
        return "follows the local geometry along training: give the sweep two snapshots at least, e.g. snapshots: [0, 100]"
    return None


def _spectra(sweep: Any) -> str | None:
    if sweep.local is None:
        return "compares the runs' spectra: needs the local geometry (local: true, or a mapping of local settings)"
    if not set(SPECTRA_KEYS) & set(sweep.block["grid"]):
        return f"compares bulk and outliers across data or width: its grid needs one of {', '.join(SPECTRA_KEYS)}"
    return None


def _goldilocks(sweep: Any) -> str | None:
    missing = [key for key in GOLDILOCKS_KEYS if key not in sweep.block["grid"]]
    if missing:
        return f"reads the init scale and the subspace dimension of each run: its grid needs {' and '.join(missing)}"
    return None


def _saddle(sweep: Any) -> str | None:
    if sweep.local is None:
        return "needs the local geometry (local: true, or a mapping of local settings)"
    if len(sweep.snapshots) < 3:
        return "looks for the saddle between the ends of training: give the sweep three snapshots at least"
    return None  # the most negative eigenpair is always there: the schema asks hessian k_bottom >= 1


def _trends(sweep: Any) -> str | None:
    if sweep.hessian is None:
        return "follows lambda_max and tr(H): needs hessian (true, or a mapping of settings)"
    varied = varied_keys(sweep.block["grid"])
    if len(varied) != 1 or varied[0] not in TREND_KEYS:
        return (f"relates the curvature to one hyperparameter: its grid must vary exactly one of {', '.join(TREND_KEYS)} "
                f"(besides train.seed), not {', '.join(varied) or 'none'}")
    return None


def _connectivity(sweep: Any) -> str | None:
    if sweep.connectivity is None:
        return "needs the connectivity stage (connectivity: true, or a mapping of connectivity settings)"
    if "taxonomy" in sweep.checks:
        return ("a phase diagram's per-cell connectivity rows stay out of the summary (its taxonomy rows judge them): "
                "declare taxonomy alone")
    return None


def _taxonomy(sweep: Any) -> str | None:
    from ..checks.taxonomy import taxonomy_axis  # torch-free: the grid's axes

    missing = [key for key in ("hessian", "connectivity") if getattr(sweep, key) is None]
    if missing:
        return (f"the phase diagram needs {' and '.join(missing)} on this sweep (true, or a mapping of settings): "
                "lambda_max and tr(H) per run, mc and CKA per cell")
    try:
        taxonomy_axis(list(sweep.block["grid"]))
    except ValueError as err:
        return str(err)
    short = [key for key, values in sweep.block["grid"].items() if len(values) < 2]
    if short:
        return (f"the phase diagram compares cells across its grid: give {', '.join(short)} two values at least "
                "(three seeds for a spread of mc)")
    if sweep.snapshots:
        return "remove this sweep's snapshots (the phase diagram reads each run's final model)"
    return None


REQUIREMENTS: dict[str, Callable[[Any], str | None]] = {
    "local": _local, "spectra": _spectra, "goldilocks": _goldilocks, "saddle": _saddle, "trends": _trends,
    "connectivity": _connectivity, "taxonomy": _taxonomy,
}


def check_problem(kind: str, sweep: Any) -> str | None:
    """What keeps ``sweep`` (a :class:`~lossgeom.planning.plan.SweepPlan`) from the check ``kind``; None if nothing."""
    return REQUIREMENTS[kind](sweep)
