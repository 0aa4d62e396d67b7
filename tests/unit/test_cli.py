"""The command line: parameter counts, and bad input as one line on stderr with exit status 2."""

from __future__ import annotations

import json

import pytest

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


def test_hessian_settings_errors_name_the_key(capsys, tmp_path):
    for settings, message in (
        ({"k_max": 3}, "hessian: unknown key(s) 'k_max'; allowed keys: k_top, k_bottom"),
        ({"dtype": "float16"}, "hessian.dtype 'float16' is unknown; allowed values: float32, float64"),
    ):
        status = main(["hessian", "--model", str(tmp_path / "model.pt"), "--settings", json.dumps(settings),
                       "--out-dir", str(tmp_path / "h")])
        assert status == 2
        assert message in capsys.readouterr().err
    status = main(["hessian", "--model", str(tmp_path / "missing.pt"), "--out-dir", str(tmp_path / "h")])
    assert status == 2 and "missing.pt: file not found" in capsys.readouterr().err
    assert not (tmp_path / "h").exists(), "nothing written on bad input"


@pytest.mark.parametrize("argv, message", [
    (["train", "--name", "x", "--spec", "{not json", "--out-dir", "OUT"], "argument --spec: not valid JSON"),
    (["hessian", "--model", "m.pt", "--settings", '{"k_top": -1}', "--out-dir", "OUT"],
     "hessian.k_top: -1 is out of range; it must be an integer >= 0"),
    (["hessian", "--model", "m.pt", "--settings", '{"k_top": 0, "k_bottom": 0}', "--out-dir", "OUT"],
     "hessian.k_top: 0 is out of range; it must be >= 1 when k_bottom is 0"),
    (["surfaces", "--model", "m.pt", "--eigenvectors", "e.pt", "--settings", '{"points_1d": 8}', "--out-dir", "OUT"],
     "surfaces.points_1d: 8 is out of range; it must be an odd integer >= 3"),
    (["--threads", "-3", "defaults"], "argument --threads: must be an integer >= 1, got -3"),
])
def test_bad_arguments_are_one_line_with_status_2(argv, message, capsys, tmp_path):
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        status = main(argv)
        raise SystemExit(status)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("step, key", [("hessian", "k_bottom"), ("surfaces", "points_1d"), ("train", "snapshots")])
def test_subcommand_help_lists_the_settings_keys_and_defaults(step, key, capsys):
    with pytest.raises(SystemExit):
        main([step, "--help"])
    out = capsys.readouterr().out
    assert f"{key}:" in out, out[-1500:]
