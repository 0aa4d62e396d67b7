"""Plot helpers shared by the figure notebooks (matplotlib only; imported by notebooks, never by the stages).

They keep the notebooks thin: a notebook loads result files and calls these. Conventions: loss surfaces are
drawn as filled contours of log10(loss), axes are the grid coordinates (a, b) of theta + a eta + b delta.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np

DIRECTION_LABELS = {
    "random": (r"$a$ (random $\eta$)", r"$b$ (random $\delta$)"),
    "hessian": (r"$a$ ($v_{\max}$)", r"$b$ ($v_{\min}$)"),
}


def grid_ranges(grids, kind: str) -> list[str]:
    """Range labels ("1", "0.05") of the 2D grids of ``kind`` in a surfaces.npz, widest first."""
    labels = {key.split("_")[1][1:] for key in grids.files if key.startswith(f"{kind}_r") and "_2d_" in key}
    return sorted(labels, key=float, reverse=True)


def loss_contour(ax, a, b, values, *, label: str, log: bool = True, levels: int = 20):
    """Filled contours of a grid (``values[i, j]`` at (a[i], b[j])) with a colorbar; marks the centre."""
    z = np.log10(np.maximum(values, 1e-12)) if log else values
    filled = ax.contourf(a, b, z.T, levels=levels, cmap="viridis")
    ax.contour(a, b, z.T, levels=filled.levels[::2], colors="white", linewidths=0.4, alpha=0.6)
    ax.plot([0], [0], marker="+", color="red", markersize=8)
    colorbar = ax.figure.colorbar(filled, ax=ax, shrink=0.85)
    colorbar.set_label(f"log$_{{10}}$ {label}" if log else label)
    return filled


def model_surfaces_figure(surfaces: Mapping[str, str | Path], splits=("train", "test"), kinds=("random", "hessian")):
    """Loss contours of every experiment: one row per (experiment, split), one column per (direction kind, range).
    ``surfaces``: {experiment: its surfaces.npz}, in the order to show."""
    experiments = list(surfaces)
    loaded = {name: np.load(path) for name, path in surfaces.items()}
    columns = [(kind, r) for kind in kinds for r in grid_ranges(next(iter(loaded.values())), kind)]
    rows = [(name, split) for name in experiments for split in splits]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(3.4 * len(columns), 2.8 * len(rows)), squeeze=False,
                             layout="constrained")
    for (name, split), row in zip(rows, axes):
        grids = loaded[name]
        for (kind, r), ax in zip(columns, row):
            prefix = f"{kind}_r{r}_2d"
            loss_contour(ax, grids[f"{prefix}_a"], grids[f"{prefix}_b"], grids[f"{prefix}_{split}_loss"],
                         label=f"{split} loss")
            ax.set_title(f"{name}: {kind}, $r$ = {r}, {split}", fontsize=9)
            ax.set_xlabel(DIRECTION_LABELS[kind][0])
            ax.set_ylabel(DIRECTION_LABELS[kind][1])
    return fig


def save(fig, pdf: str | Path, png: str | Path, dpi: int = 120) -> None:
    """Write the figure as PDF and PNG (creating the folder)."""
    for path in (pdf, png):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(pdf)
    fig.savefig(png, dpi=dpi)
