"""The command line: parameter counts, and bad input as one line on stderr with exit status 2."""

from __future__ import annotations

import json

from lossgeom.cli import main


def test_describe_reports_parameter_counts(capsys):
    experiments = {"m": {"dataset": {"name": "digits"}, "model": {"name": "mlp", "hidden": [10]}}}
    assert main(["describe", "--experiments", json.dumps(experiments)]) == 0
    assert capsys.readouterr().out.strip() == f"m: mlp on digits [1, 8, 8], {(64 + 1) * 10 + (10 + 1) * 10} parameters"


def test_bad_input_is_one_line_with_status_2(capsys, tmp_path):
    spec = {"dataset": {"name": "digits"}, "model": {"name": "resnet", "depth": 21}}
    status = main(["train", "--name", "x", "--spec", json.dumps(spec), "--out-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err[-1] == "lossgeom train: error: resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got 21"
    assert "Traceback" not in "\n".join(err)
