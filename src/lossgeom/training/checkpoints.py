"""Reading and writing checkpoints and trained models, always with ``weights_only=True``.

A file that cannot be read (truncated, corrupt, not a checkpoint) raises :class:`CheckpointError`
naming the file and what to do, instead of an unpickling traceback.

A model file's bytes depend only on its weights, its experiment spec and the few fixed fields of ``info``
(:data:`MODEL_INFO_KEYS`): no time, wall time, host or version goes in (those are the provenance in train.json,
beside it). A retried job that rewrites a model therefore writes the same bytes, so results keyed on the file's
SHA-256 (e.g. the Hessian stage's partial.pt) stay valid.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..io.atomic import atomic_path
from ..problems.data import Dataset, load_dataset
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
    return (f"rebuild it with `{rebuild_command(path)}` (the usual command then updates what was computed "
            "from it), or rerun the library step that writes it")


def rebuild_command(path: str | os.PathLike) -> str:
    """The Snakemake command that rebuilds one file with the config its folder was built from. The workflow's jobs
    find their config files in $LOSSGEOM_CONFIGFILES (its shell prefix sets it); elsewhere the command says to add
    them. The target comes first: --configfile takes every word after it."""
    configs = os.environ.get("LOSSGEOM_CONFIGFILES", "").strip()
    if configs:
        return f"snakemake {path} --cores all --configfile {configs}"
    return f"snakemake {path} --cores all --configfile <the config file(s) the results were built from>"


# What a model file's ``info`` may hold: the experiment's name, the spec's fingerprint and, for a snapshot, its
# step, epoch, learning rate and metrics (functions of the weights and the spec). Anything else (train.json's wall time,
# device, provenance with its time and host) would make two saves of the same weights differ.
MODEL_INFO_KEYS = frozenset({"experiment", "spec_hash", "step", "epoch", "lr"}
                            | {f"{split}_{metric}" for split in ("train", "test")
                               for metric in ("loss", "accuracy", "mse", "r2")})


def save_model(path: str | os.PathLike, model: nn.Module, experiment: dict[str, Any], info: dict[str, Any]) -> None:
    """Write final weights plus the resolved experiment spec needed to rebuild the model.

    Of ``info`` only the keys of :data:`MODEL_INFO_KEYS` are kept, so the same weights and spec give the same bytes."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    kept = {k: v for k, v in info.items() if k in MODEL_INFO_KEYS}
    # A JSON round trip keeps the metadata to plain types, which weights_only loading accepts
    # (e.g. torch.__version__ is a TorchVersion object, which it refuses).
    plain = json.loads(json.dumps({"experiment": experiment, "info": kept}, default=str))
    save_torch_reproducibly({"format": MODEL_FORMAT, "state_dict": state, **plain}, path)


def save_torch_reproducibly(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically, with bytes that depend on ``obj`` only.

    Given a file name, torch.save names the zip archive's folder after it, and an atomic write saves to a random
    temporary name first, so every save differed. Given an open file, the folder is always ``archive``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, Dataset, dict[str, Any]]:
    """Rebuild a trained model (in eval mode, on ``device``) and its dataset from a model file."""
    obj = load_file(path, MODEL_FORMAT, device)
    experiment = obj["experiment"]
    dataset = load_dataset(experiment["dataset"])
    model = build_model(experiment["model"], dataset.input_shape, dataset.output_dim).to(device)
    model.load_state_dict(obj["state_dict"])
    model.eval()
    return model, dataset, obj
