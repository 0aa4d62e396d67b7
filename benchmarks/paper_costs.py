"""What the paper-scale jobs cost on this machine: configs/paper.yaml's experiments through the job_costs step.

For every experiment of the paper config, the passes its jobs plan (an epoch, loss evaluations, Hessian-vector
products in each stage's precision and examples) are timed on this device, and each job's runtime estimated as
the workflow's `job_costs` rule does (lossgeom.stages.job_costs). MNIST and CIFAR-10 are replaced by random
images of their exact sizes written to a temporary folder in their on-disk formats (the cost of a pass does
not depend on the pixel values), so no download is needed.

    uv run python benchmarks/paper_costs.py                        # CPU, writes benchmarks/out/paper_costs-cpu.json
    PYTHONPATH=src python3 benchmarks/paper_costs.py --device cuda  # on a GPU machine
"""

from __future__ import annotations

import argparse
import pickle
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from lossgeom.device import pick_device  # noqa: E402
from lossgeom.stages.job_costs import StageSettings, compute  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def write_mnist(root: Path, rng: np.random.Generator) -> None:
    """The four raw IDX files torchvision's MNIST reads, with random pixels and labels (60,000 / 10,000)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


def write_cifar10(root: Path, rng: np.random.Generator) -> None:
    """The six python batches of CIFAR-10 (5 x 10,000 train, 10,000 test) with random pixels and labels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(10000, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, size=10000)]}
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--config", default=str(REPO / "configs/paper.yaml"))
    parser.add_argument("--experiments", nargs="*", help="a subset of the config's experiments")
    parser.add_argument("--batches", type=int, default=1, help="full batches timed per pass")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    device = pick_device(args.device)
    blocks = {"hessian": config.get("hessian", {}), "surfaces": config.get("surfaces", {}),
              "checks.models": config.get("checks", {}).get("models", {}),
              "runtimes": {**config.get("runtimes", {}), "batches": args.batches, "repeats": args.repeats}}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        write_mnist(root, rng)
        write_cifar10(root, rng)
        for name, spec in config["experiments"].items():
            if args.experiments and name not in args.experiments:
                continue
            spec = {**spec, "dataset": dict(spec["dataset"])}
            if "root" in spec["dataset"]:  # an on-disk dataset: the random stand-in, nothing downloaded
                spec["dataset"].update(root=str(root), download=False)
            print(f"{name}:", flush=True)
            record = compute(spec, StageSettings.from_mapping(spec, blocks), device,
                             log=lambda line: print(f"  {line}", flush=True))
            results[name] = record
    out = args.out or REPO / f"benchmarks/out/paper_costs-{device.type}.json"
    write_result(out, {"machine": machine(device), "config": str(args.config), "experiments": results,
                       "torch": torch.__version__})


if __name__ == "__main__":
    main()
