"""run-trajectory and sweep-batch on bad input: one error line naming the file or key and the fix, status 2, no
traceback, nothing written (as the other subcommands)."""

from __future__ import annotations

import json

import pytest

from lossgeom.cli import main

SPEC = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 30, "n_test": 15},
        "model": {"name": "mlp", "hidden": [4]}, "train": {"epochs": 1, "batch_size": 10, "device": "cpu"}}


def status_and_error(argv, capsys) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as exit_info:  # argparse's own errors
        status = exit_info.code
    return status, capsys.readouterr().err


def assert_one_error_line(status, err, message):
    assert status == 2, err
    assert "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err
    assert message in err, err


def snapshots_folder(tmp_path, *names):
    folder = tmp_path / "snapshots"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


@pytest.mark.parametrize("case, extra, message", [
    ("missing", [], "snapshots: no such snapshots folder; give the run's snapshots folder as --snapshots"),
    ("empty", [], "snapshots: no snapshot files (step=<k>.pt); rerun the run's training step"),
    ("bad name", [], "step=last.pt: not a snapshot file name (step=<k>.pt with an integer k >= 0)"),
    ("final", ["--final-model", "FOLDER/model.pt"], "model.pt: final model file not found"),
    ("json", ["--hessian-settings", "{k_top: 3"], "argument --hessian-settings: not valid JSON"),
    ("not an object", ["--hessian-settings", "[3]"], "--hessian-settings: expected a JSON object"),
    ("unknown key", ["--local-settings", '{"probes": 3}'], "local: unknown key(s) 'probes'"),
])
def test_run_trajectory_bad_input(case, extra, message, tmp_path, capsys):
    if case == "missing":
        folder = tmp_path / "snapshots"
    else:
        folder = snapshots_folder(tmp_path, *{"empty": [], "bad name": ["step=0.pt", "step=last.pt"]}.get(case, ["step=0.pt"]))
    argv = ["run-trajectory", "--snapshots", str(folder), "--out-dir", str(tmp_path / "out")]
    status, err = status_and_error(argv + [a.replace("FOLDER", str(tmp_path)) for a in extra], capsys)
    assert_one_error_line(status, err, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("runs, extra, message", [
    ("[]", [], "--runs: expected a non-empty JSON object"),
    ("{bad", [], "argument --runs: not valid JSON"),
    (json.dumps({"a": {"spec": SPEC}}), [], "--runs: run 'a' must have exactly the keys 'spec' and 'out_dir', got ['spec']"),
    (json.dumps({"a": ["spec"]}), [], "--runs: run 'a' must have exactly the keys 'spec' and 'out_dir', got list"),
    (json.dumps({"a": {"spec": 5, "out_dir": "OUT"}}), [], "--runs: run 'a': spec must be an experiment"),
    (json.dumps({"a": {"spec": SPEC, "out_dir": 3}}), [], "--runs: run 'a': out_dir must be a folder name"),
    (json.dumps({"a": {"spec": SPEC, "out_dir": "OUT"}, "b": {"spec": {**SPEC, "train": {"optimizer": "lbfgs"}},
                                                            "out_dir": "OUT"}}),
     [], "--runs: run 'b': train.optimizer 'lbfgs' is unknown"),
    (json.dumps({"a": {"spec": SPEC, "out_dir": "OUT"}}), ["--hessian-settings", '"k_top"'],
     "--hessian-settings: expected a JSON object"),
    (json.dumps({"a": {"spec": SPEC, "out_dir": "OUT"}}), ["--local-settings", "{,}"],
     "argument --local-settings: not valid JSON"),
])
def test_sweep_batch_bad_input(runs, extra, message, tmp_path, capsys):
    out = str(tmp_path / "out")
    status, err = status_and_error(["sweep-batch", "--runs", runs.replace("OUT", out)] + extra, capsys)
    assert_one_error_line(status, err, message)
    assert not (tmp_path / "out").exists(), "no run is trained before the runs are checked"
