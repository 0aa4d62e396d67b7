"""The connectivity step on small trained runs: the paths' ends are the solutions themselves, the continuation starts
at the large-batch solution, a rerun after a kill reuses the finished units, and the library pieces it is built from
(flat_loss, minibatches, continue_training, mixup inputs) against their definitions."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lossgeom.errors import ConfigError
from lossgeom.geometry.paths import flat_loss
from lossgeom.geometry.similarity import mixup_inputs
from lossgeom.io.partial import PartialFile
from lossgeom.stages import connectivity, train
from lossgeom.training.checkpoints import load_model
from lossgeom.training.continuation import continue_training, minibatches
from lossgeom.training.evaluation import evaluate

SETTINGS = connectivity.ConnectivitySettings(path_points=9, bend_epochs=2, connector_epochs=2, batch_size=20,
                                             simplex_samples=10, slice_points=5, continue_epochs=2, cka_examples=40,
                                             device="cpu")
quiet = lambda *_: None  # noqa: E731


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("connectivity")
    out = {}
    for batch in (20, 60):
        for seed in (0, 1, 2):
            spec = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 120, "n_test": 60},
                    "model": {"name": "mlp", "hidden": [6]},
                    "train": {"epochs": 3, "batch_size": batch, "lr": 0.1, "seed": seed, "device": "cpu"}}
            name = f"b{batch}_s{seed}"
            train.run(name, spec, folder / name, progress=False)
            out[name] = {"model": str(folder / name / "model.pt"),
                         "grid": {"train.batch_size": batch, "train.seed": seed}}
    return out


def test_paths_start_and_end_at_the_solutions_and_every_output_is_written(runs, tmp_path):
    summary = connectivity.run(runs, SETTINGS, tmp_path / "c", tmp_path / "rows.csv", "demo", log=quiet)
    assert list(summary["conditions"]) == ["batch_size=20", "batch_size=60"]
    paths = pd.read_csv(tmp_path / "c" / "paths.csv")
    for kind in ("line", "bezier"):
        ends = paths[(paths["kind"] == kind) & (paths["start"] == "b20_s0") & (paths["end"] == "b20_s1")]
        assert list(ends["t"]) == pytest.approx(np.linspace(0, 1, 9).tolist())
        for t, run in ((0.0, "b20_s0"), (1.0, "b20_s1")):
            model, data, _ = load_model(runs[run]["model"])
            own = evaluate(model, data.x_train, data.y_train, "classification", 1024)["loss"]
            assert float(ends[ends["t"] == t]["train_loss"].iloc[0]) == pytest.approx(own, rel=1e-5)
    record = summary["conditions"]["batch_size=20"]
    assert len(record["pairs"]) == 3 and 0 <= record["cka"] <= 1
    assert record["simplex"]["faces"] == [[0, 3, 4], [1, 3, 4], [2, 3, 4]]
    assert record["simplex"]["connector_distance"] > 0 and record["simplex"]["seed_distance"] > 0
    # each large-batch run continued at batch 20, from its own weights: the line's t = 0 is that solution
    assert [c["run"] for c in summary["continued"]] == ["b60_s0", "b60_s1", "b60_s2"]
    first = paths[(paths["kind"] == "large_to_small") & (paths["start"] == "b60_s0")]
    model, data, _ = load_model(runs["b60_s0"]["model"])
    assert float(first["train_loss"].iloc[0]) == pytest.approx(
        evaluate(model, data.x_train, data.y_train, "classification", 1024)["loss"], rel=1e-5)
    assert set(pd.read_csv(tmp_path / "rows.csv")["check"]) == {
        "global_seeds_barrier", "global_bezier_removes_barrier", "global_simplex_low_loss",
        "global_large_small_batch_one_basin"}
    with np.load(tmp_path / "c" / "simplex_slice.npz") as slices:
        assert slices["batch_size=20__loss"].shape == (5, 5)
    assert set(summary["inputs"]) == set(runs) and not (tmp_path / "c" / "partial.pt").exists()
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["inputs"]["b20_s0"]["sha256"]


def test_a_rerun_after_a_kill_reuses_finished_units(runs, tmp_path):
    """A unit saved in partial.pt (as by a job killed after it) is not computed again; its saved result is used."""
    inputs = connectivity.input_record(**{k: v["model"] for k, v in runs.items()})
    partial = PartialFile.for_job(tmp_path / "c" / "partial.pt", inputs, SETTINGS)
    reference = connectivity.run(runs, SETTINGS, tmp_path / "ref", tmp_path / "ref.csv", "demo", log=quiet)
    marker = reference["continued"][0]
    saved = {"rows": pd.read_csv(tmp_path / "ref" / "paths.csv").query("kind == 'large_to_small' and start == "
                                                                         "'b60_s0'").to_dict("records"),
             "losses": [123.0], "distance": marker["distance"]}
    partial.slot("continued/b60_s0").save(saved, final=True)
    messages = []
    summary = connectivity.run(runs, SETTINGS, tmp_path / "c", tmp_path / "rows.csv", "demo", log=messages.append)
    assert summary["continued"][0]["epoch_losses"] == [123.0]  # taken from the partial file, not recomputed
    assert not any(m.startswith("b60_s0: continued") for m in messages)
    assert any(m.startswith("b60_s1: continued") for m in messages)
    assert summary["conditions"]["batch_size=20"]["pairs"] == reference["conditions"]["batch_size=20"]["pairs"]


def test_bad_settings_and_regression_runs_are_refused_by_name(runs, tmp_path):
    with pytest.raises(Exception, match="path_points"):
        connectivity.ConnectivitySettings(path_points=10)
    spec = {"dataset": {"name": "sines", "n_train": 32, "n_test": 16}, "model": {"name": "mlp", "hidden": [4]},
            "train": {"epochs": 1, "batch_size": 16, "device": "cpu"}}
    train.run("sines", spec, tmp_path / "sines", progress=False)
    with pytest.raises(ValueError, match="regression"):
        connectivity.run({"r": {"model": str(tmp_path / "sines" / "model.pt"), "grid": {"train.seed": 0}}}, SETTINGS,
                         tmp_path / "c", tmp_path / "rows.csv", "sines", log=quiet)


def test_flat_loss_is_the_models_loss_and_differentiates_in_the_weights(runs):
    model, data, _ = load_model(runs["b20_s0"]["model"])
    w, loss_of = flat_loss(model, F.cross_entropy)
    batch = (data.x_train[:30], data.y_train[:30])
    with torch.no_grad():
        assert float(loss_of(w, batch)) == pytest.approx(float(F.cross_entropy(model(batch[0]), batch[1])), rel=1e-6)
    w = w.clone().requires_grad_(True)
    loss_of(w, batch).backward()
    model.zero_grad()
    F.cross_entropy(model(batch[0]), batch[1]).backward()
    assert torch.allclose(w.grad, torch.cat([p.grad.reshape(-1) for p in model.parameters()]), atol=1e-6)


def test_minibatches_cover_every_example_once_per_epoch_and_continuation_is_seeded(runs):
    x, y = torch.arange(10.0).view(-1, 1), torch.arange(10)
    batches = list(minibatches(x, y, 4, 2, seed=3))
    assert [len(b[1]) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat([b[1] for b in batches[:3]]).tolist()) == list(range(10))
    results = []
    for _ in range(2):
        model, data, _ = load_model(runs["b60_s0"]["model"])
        model.train(_ == 1)  # the mode it is given is the mode it is left in
        continue_training(model, F.cross_entropy, data.x_train, data.y_train, epochs=2, batch_size=20, lr=0.1, seed=1)
        assert model.training == (_ == 1)
        results.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(results[0], results[1])


def test_mixup_inputs_lie_between_two_training_examples():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    mixed = mixup_inputs(x, 200, concentration=16.0, seed=1)
    assert mixed.shape == (200, 3) and torch.equal(mixed, mixup_inputs(x, 200, concentration=16.0, seed=1))
    # Beta(16, 16) has mean 1/2 and standard deviation 1/sqrt(4 * 33) = 0.087: an input equals a training example only
    # when both ends are the same example (i = j, probability 1/50); all lie within the examples' bounding box
    copies = sum(bool(torch.isclose(m, x).all(dim=1).any()) for m in mixed)
    assert copies < 20
    assert (mixed >= x.min(0).values - 1e-6).all() and (mixed <= x.max(0).values + 1e-6).all()



def test_simplices_and_continuation_can_be_left_out_and_the_taxonomy_step_reads_the_rest(runs, tmp_path):
    """A phase diagram's many cells need the pairs (mc) and CKA only: with simplices and continuation off neither is
    computed; the taxonomy step builds its cells from this summary and the run table, and refuses a table without
    the runs' Hessians by naming the file and the sweep key to set."""
    from pathlib import Path

    from lossgeom.stages import sweep_table, taxonomy

    lean = dataclasses.replace(SETTINGS, simplices=False, continuation=False)
    summary = connectivity.run(runs, lean, tmp_path / "c", tmp_path / "rows.csv", "demo", log=quiet)
    assert summary["continued"] == [] and all("simplex" not in r for r in summary["conditions"].values())
    assert set(pd.read_csv(tmp_path / "rows.csv")["check"]) == {"global_seeds_barrier", "global_bezier_removes_barrier"}
    # a width x batch-size grid of one width: the runs' grids and the summary's conditions with the width key
    grid = {name: {"model.hidden": [6], **item["grid"]} for name, item in runs.items()}
    for record in summary["conditions"].values():
        record["grid"] = {"model.hidden": [6], **record["grid"]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    table = sweep_table.compute(grid, {name: Path(item["model"]).parent for name, item in runs.items()})
    table.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(ValueError, match=r"runs\.csv: no column lambda_max, trace_hutchinson.*sweeps\.demo"):
        taxonomy.run(tmp_path / "runs.csv", tmp_path / "summary.json", "demo", tmp_path / "cells.csv",
                     tmp_path / "t.csv", log=quiet)
    table.assign(lambda_max=1.0, trace_hutchinson=2.0).to_csv(tmp_path / "runs.csv", index=False)
    cells = taxonomy.run(tmp_path / "runs.csv", tmp_path / "summary.json", "demo", tmp_path / "cells.csv",
                         tmp_path / "t.csv", log=quiet)
    assert list(cells["axis"]) == [20, 60] and list(cells["seeds"]) == [3, 3] and list(cells["pairs"]) == [3, 3]
    for cell, record in zip(cells.itertuples(), summary["conditions"].values()):
        assert cell.mc == pytest.approx(np.mean([p["bezier"]["mc"] for p in record["pairs"]]))
        assert cell.cka == pytest.approx(record["cka"])
        members = table[table["run"].isin(record["runs"])]
        assert cell.train_loss == pytest.approx(members["train_loss"].mean())
    assert json.loads((tmp_path / "cells.json").read_text())["inputs"]["runs"]["sha256"]


def test_a_sweep_split_into_parts_merges_into_what_one_job_writes(runs, tmp_path):
    """Whole conditions per part (as the workflow splits them), then one merge: the same conditions, numbers and rows
    as one job over every run; a split with continuation on is refused (a continuation crosses conditions)."""
    lean = dataclasses.replace(SETTINGS, continuation=False, simplices=False)
    whole = connectivity.run(runs, lean, tmp_path / "whole", tmp_path / "whole.csv", "demo", log=quiet)
    folders = []
    for batch in (60, 20):  # the parts in the other order than the grid's: the merge restores the grid's
        part = {name: item for name, item in runs.items() if item["grid"]["train.batch_size"] == batch}
        folders.append(tmp_path / f"part{batch}")
        connectivity.run(part, lean, folders[-1], None, "demo", log=quiet)
        assert sorted(p.name for p in folders[-1].iterdir()) == ["paths.csv", "simplex_slice.npz", "summary.json"]
    merged = connectivity.merge(folders, tmp_path / "merged", tmp_path / "merged.csv", "demo", order=list(runs),
                                log=quiet)
    assert list(merged["conditions"]) == list(whole["conditions"]) == ["batch_size=20", "batch_size=60"]
    assert merged["conditions"] == whole["conditions"] and set(merged["inputs"]) == set(whole["inputs"])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "merged.csv"), pd.read_csv(tmp_path / "whole.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "merged" / "paths.csv"),
                                  pd.read_csv(tmp_path / "whole" / "paths.csv"))
    with pytest.raises(ConfigError, match="connectivity.parts.*continuation: false"):
        dataclasses.replace(SETTINGS, parts=2)
