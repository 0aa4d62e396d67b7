"""Reading and writing checkpoints and trained models, always with ``weights_only=True``.

A file that cannot be read (truncated, corrupt, not a checkpoint) raises :class:`CheckpointError`
naming the file and what to do, instead of an unpickling traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io.atomic import save_torch
from ..problems.data import Dataset, load_dataset
from ..errors import CheckpointError
from ..problems.models import build_model

MODEL_FORMAT = "lossgeom-model-v1"
CHECKPOINT_FORMAT = "lossgeom-checkpoint-v1"


def load_file(path: str | os.PathLike, expected_format: str, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a file written by this library and check its format tag."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: file not found; {_how_to_rebuild(path, expected_format)}")
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        raise CheckpointError(
            f"{path}: cannot be read ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            f"it is truncated or corrupt. Delete it; {_how_to_rebuild(path, expected_format)}"
        ) from err
    if not isinstance(obj, dict) or obj.get("format") != expected_format:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: expected a {expected_format} file, found {found!r}. Delete it; "
                              f"{_how_to_rebuild(path, expected_format)}")
    return obj


def _how_to_rebuild(path: Path, expected_format: str) -> str:
    """What brings a missing or deleted file back. A workflow output must be asked for by name: Snakemake does
    not rebuild a deleted intermediate file whose dependents are still there ("Nothing to be done")."""
    if expected_format == CHECKPOINT_FORMAT:
        return "the training job then starts afresh from the initialization"
    return (f"rebuild it with `snakemake --cores all {path}` (the usual command then updates what was computed "
            "from it), or rerun the library step that writes it")


def save_model(path: str | os.PathLike, model: nn.Module, experiment: dict[str, Any], info: dict[str, Any]) -> None:
    """Write final weights plus the resolved experiment spec needed to rebuild the model."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # A JSON round trip keeps the metadata to plain types, which weights_only loading accepts
    # (e.g. torch.__version__ is a TorchVersion object, which it refuses).
    plain = json.loads(json.dumps({"experiment": experiment, "info": info}, default=str))
    save_torch({"format": MODEL_FORMAT, "state_dict": state, **plain}, path)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, Dataset, dict[str, Any]]:
    """Rebuild a trained model (in eval mode, on ``device``) and its dataset from a model file."""
    obj = load_file(path, MODEL_FORMAT, device)
    experiment = obj["experiment"]
    dataset = load_dataset(experiment["dataset"])
    model = build_model(experiment["model"], dataset.input_shape, dataset.output_dim).to(device)
    model.load_state_dict(obj["state_dict"])
    model.eval()
    return model, dataset, obj
