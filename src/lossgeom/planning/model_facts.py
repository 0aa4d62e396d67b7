"""Two facts of an experiment that need its model or data built (torch): N and the number of optimizer steps.

The plan asks for them only where a sweep needs them (a subspace dimension to bound, dense matrices to size,
snapshots to place), each distinct dataset and model once; torch is imported on the first question, so a config
without such sweeps is planned without it.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from ..settings import TrainSettings


class ModelFacts:
    """N and the training steps of experiment specs, computed once per distinct spec (or by the given functions)."""

    def __init__(self, parameters: Callable[[Mapping[str, Any]], int] | None = None,
                 training_steps: Callable[[Mapping[str, Any]], int | None] | None = None):
        self._parameters = parameters or _parameters
        self._training_steps = training_steps
        self._cache: dict[tuple[str, str], Any] = {}

    def _cached(self, what: str, keys: tuple[str, ...], spec: Mapping[str, Any], compute: Callable) -> Any:
        key = (what, json.dumps({k: spec.get(k) for k in keys}, sort_keys=True, default=str))
        if key not in self._cache:
            self._cache[key] = compute(spec)
        return self._cache[key]

    def parameters(self, spec: Mapping[str, Any]) -> int:
        """N, the model's trainable parameters."""
        return self._cached("N", ("dataset", "model"), spec, self._parameters)

    def training_steps(self, spec: Mapping[str, Any]) -> int | None:
        """Optimizer steps of the whole training, epochs x ceil(training examples / batch size), as the training loop
        counts them; None where the data are not at hand (on-disk datasets: their jobs check the steps)."""
        if self._training_steps is not None:
            return self._training_steps(spec)
        examples = self._cached("examples", ("dataset",), spec, _training_examples)
        if examples is None:
            return None
        return TrainSettings.from_mapping(spec.get("train", {})).total_steps(examples)


def _parameters(spec: Mapping[str, Any]) -> int:
    try:
        from ..training.loop import model_size
    except ImportError as err:  # a Snakemake installation without the library's dependencies
        raise ConfigError(f"planning needs N of {spec['model'].get('name')} (a subspace dimension to bound, dense matrices "
                          f"to size), which needs torch: {err}. Run snakemake from the project's environment "
                          "(uv run snakemake ...)") from None
    return model_size(spec)


def _training_examples(spec: Mapping[str, Any]) -> int | None:
    """The training examples of a spec's dataset (train_fraction applied); None for the on-disk datasets, which are
    not read when planning."""
    try:
        from ..problems.data import ON_DISK_SHAPES, DATASETS, load_dataset
    except ImportError:  # a Snakemake installation without torch: the training job checks its snapshots itself
        return None
    if spec["dataset"]["name"] in ON_DISK_SHAPES:
        return None
    return len(load_dataset(DATASETS.resolve(spec["dataset"])).x_train)
