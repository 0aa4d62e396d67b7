"""`lossgeom <step> --help` tells the truth: every option it names exists, and the settings keys it lists are said to go
where the step reads them (train's are the "train" object of --spec; it has no --settings)."""

from __future__ import annotations

import re

import pytest

from lossgeom.cli import build_parser, main

PARSER = build_parser()
OTHER_PROGRAMS = {"--configfile"}  # snakemake's, named by check-config's help
STEPS = PARSER._subparsers._group_actions[0].choices  # name -> subcommand parser


def help_text(step: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([step, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_option_a_help_names_exists(step, capsys):
    text = help_text(step, capsys)
    own = set(STEPS[step]._option_string_actions) | set(PARSER._option_string_actions) | OTHER_PROGRAMS
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
    assert named <= own, f"lossgeom {step} --help names {sorted(named - own)}, which it does not take"
    if "keys of --settings (" in text:
        assert "--settings" in STEPS[step]._option_string_actions


def test_train_help_says_its_settings_are_the_train_object_of_spec(capsys):
    text = help_text("train", capsys)
    assert "--settings" not in text
    assert 'keys of the "train" object of --spec' in text and "  snapshots: []" in text


def test_job_costs_help_says_its_keys_are_the_runtimes_object(capsys):
    text = help_text("job-costs", capsys)
    assert 'keys of the "runtimes" object of --settings' in text and "  safety: 2.0" in text


def test_top_level_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and "python -m lossgeom" in out


def test_check_config_without_a_schema_is_one_line(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("experiments: {}\n")
    assert main(["check-config", str(config), "--schema", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.yaml: no config schema there; pass --schema" in err[0]
