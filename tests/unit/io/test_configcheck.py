"""Config validation: every kind of mistake stops with one message naming the key and what is allowed."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml

from lossgeom.io.configcheck import load_schema, validate_config
from lossgeom.problems.data import DATASETS
from lossgeom.errors import ConfigError
from lossgeom.problems.models import MODELS
from lossgeom.stages.config_blocks import blocks
from lossgeom.stages.hessian import HessianSettings
from lossgeom.training.loop import TrainSettings, resolve_experiment
from tests.conftest import REPO

BLOCKS = blocks()

SCHEMA = load_schema(REPO / "workflow/schemas/config.schema.yaml")


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def error_for(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA, sources=["my.yaml"])
    message = str(info.value)
    assert "\n" not in message, "one line, no schema dump"
    assert "(my.yaml)" in message, "names the config file"
    return message


@pytest.mark.parametrize("path", ["config.yaml", "configs/tiny.yaml", "configs/paper.yaml"])
def test_shipped_configs_are_valid(path):
    validate_config(yaml.safe_load((REPO / path).read_text()), SCHEMA)


def test_defaults_are_filled(config):
    config["experiments"]["digits_mlp"].pop("train")
    validate_config(config, SCHEMA)
    assert config["threads"] == 1 and config["device"] == "cpu"
    del config["threads"]
    validate_config(config, SCHEMA)
    assert config["threads"] == 1
    assert config["experiments"]["digits_mlp"]["train"] == {}  # the train block's defaults: TrainSettings
    resolved = resolve_experiment(config["experiments"]["digits_mlp"])
    assert resolved["train"] == dataclasses.asdict(TrainSettings())


def test_unknown_top_level_key(config):
    config["devise"] = "cpu"
    msg = error_for(config)
    assert "unknown key(s) 'devise'" in msg
    assert ("allowed keys: checks, connectivity, device, experiments, figures, gpus, hessian, local, runtimes, saddle, "
            "surfaces, sweeps, threads") in msg


def test_unknown_nested_key_lists_allowed_keys(config):
    config["experiments"]["digits_mlp"]["train"]["lrr"] = 0.1
    msg = error_for(config)
    assert "experiments.digits_mlp.train: unknown key(s) 'lrr'" in msg and "lr" in msg.split("allowed keys:")[1]


def test_wrong_type(config):
    config["experiments"]["digits_cnn"]["train"]["epochs"] = "ten"
    msg = error_for(config)
    assert "experiments.digits_cnn.train.epochs: 'ten' is a str, expected integer" in msg


def test_value_not_allowed_lists_allowed_values(config):
    config["experiments"]["digits_mlp"]["model"]["name"] = "mpl"
    msg = error_for(config)
    assert "experiments.digits_mlp.model.name: 'mpl' is not allowed" in msg
    for name in MODELS.names():
        assert name in msg


def test_out_of_range(config):
    config["experiments"]["sines_mlp"]["train"]["lr"] = -0.1
    assert "experiments.sines_mlp.train.lr: -0.1 is out of range; must be > 0" in error_for(config)


def test_missing_required_key(config):
    del config["experiments"]["digits_mlp"]["dataset"]
    assert "experiments.digits_mlp: 'dataset' is a required property" in error_for(config)


def test_key_of_another_model_is_refused(config):
    config["experiments"]["digits_mlp"]["model"]["depth"] = 20  # resnet's key on an mlp
    assert "experiments.digits_mlp.model: unknown key(s) 'depth'" in error_for(config)


def test_bad_experiment_name(config):
    config["experiments"]["my experiment"] = copy.deepcopy(config["experiments"]["digits_mlp"])
    assert "'my experiment' does not match the pattern" in error_for(config)


def test_bad_device(config):
    config["device"] = "tpu"
    assert "device: 'tpu' is not allowed; allowed values: auto, cpu, cuda" in error_for(config)


def _schema_params(section: str, name: str) -> set[str]:
    for branch in SCHEMA["$defs"][section]["allOf"]:
        cond = branch["if"]["properties"]["name"]
        if cond.get("const") == name or name in cond.get("enum", []):
            return set(branch["then"]["properties"]) - {"name"}
    raise AssertionError(f"schema has no branch for {section} {name!r}")


@pytest.mark.parametrize("section, registry", [("dataset", DATASETS), ("model", MODELS)])
def test_schema_matches_registry(section, registry):
    """The schema documents exactly the parameters the library accepts (no drift), options included;
    label noise is refused up front on regression data, which have their own noise option."""
    from lossgeom.io.configcheck import REGRESSION_DATASETS

    assert set(SCHEMA["$defs"][section]["properties"]["name"]["enum"]) == set(registry.names())
    for name in registry.names():
        expected = set(registry.parameters(name)) | set(registry.options)
        if name in REGRESSION_DATASETS:
            expected -= {"label_noise"}
        assert _schema_params(section, name) == expected, name


@pytest.mark.parametrize("points, expected", [(20, "surfaces.points: 20 is even; it must be odd"),
                                             (7, "surfaces.points: 7 is out of range; must be >= 9")])
def test_surface_grid_needs_a_centre_and_room_around_it(config, points, expected):
    config["surfaces"]["points"] = points
    assert expected in error_for(config)


def test_surfaces_need_the_train_split(config):
    config["surfaces"]["splits"] = ["test"]
    assert "surfaces.splits: ['test'] must contain 'train'" in error_for(config)


def schema_block(path: str) -> dict:
    """The schema of a settings block by its key path, e.g. "checks.models" or "experiments.*.train"."""
    if path == "experiments.*.train":
        return SCHEMA["$defs"]["train"]
    node = SCHEMA
    for key in path.split("."):
        node = node["properties"][key]
    return node


@pytest.mark.parametrize("path", sorted(BLOCKS))
def test_settings_blocks_take_their_defaults_from_the_dataclasses_only(path):
    """The schema knows each block's keys (to reject unknown ones before any job) but holds no default value:
    those live in the settings dataclass alone, and a validated config leaves an omitted key omitted."""
    block = schema_block(path)
    assert set(block["properties"]) == {f.name for f in dataclasses.fields(BLOCKS[path])}
    assert all("default" not in spec for spec in block["properties"].values()), path
    assert block.get("default", {}) == {}


def test_defaults_command_prints_the_dataclass_defaults(capsys):
    from lossgeom.cli import main

    assert main(["defaults"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["hessian"]["tol"] == HessianSettings().tol and printed["surfaces"]["ranges"] == [1.0, 0.1, 0.05]
    assert printed["experiments"]["*"]["train"]["epochs"] == TrainSettings().epochs


def test_unknown_hessian_key(config):
    config["hessian"]["k_max"] = 5
    assert "hessian: unknown key(s) 'k_max'; allowed keys: " in error_for(config)


@pytest.mark.parametrize("spec", [{"name": "digits"}, {"name": "mnist1d", "num_samples": 200}, {"name": "sines"},
                                  {"name": "gaussian_mixture"}])
def test_experiment_task_matches_the_loaded_data(spec):
    from lossgeom.io.configcheck import experiment_task
    from lossgeom.problems.data import load_dataset

    assert experiment_task({"dataset": spec}) == load_dataset(spec).task


def test_experiment_task_knows_every_dataset():
    """A new dataset must be placed here (the download-only ones are classification)."""
    from lossgeom.io.configcheck import REGRESSION_DATASETS

    known = {"digits", "mnist1d", "sines", "gaussian_mixture", "mnist", "cifar10"}
    assert set(DATASETS.names()) == known and REGRESSION_DATASETS <= known


# ---- config files read before Snakemake does: one message naming the file (and line) ----

def test_a_yaml_syntax_error_names_file_line_and_column(tmp_path):
    from lossgeom.io.configcheck import read_config_files

    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments:\n  a: {dataset: {name: digits}\n  model: x\n")
    with pytest.raises(ConfigError, match=rf"^{bad}, line 3, column 3: not valid YAML: expected ',' or '}}'"):
        read_config_files([bad])
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'missing.yaml'}: no such config file"):
        read_config_files([tmp_path / "missing.yaml"])


def test_several_files_merge_as_snakemake_merges_them(tmp_path):
    from lossgeom.cli import SCHEMA
    from lossgeom.io.configcheck import check_config_files

    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("experiments:\n  m: {dataset: {name: digits}, model: {name: mlp}}\nhessian: {k_top: 4}\n")
    second.write_text("hessian: {k_bottom: 2}\n")
    config = check_config_files([first, second], SCHEMA)
    assert config["hessian"] == {"k_top": 4, "k_bottom": 2} and list(config["experiments"]) == ["m"]
    second.write_text("hessian: {k_bottom: 0}\n")
    with pytest.raises(ConfigError, match=rf"\({first}, {second}\): hessian.k_bottom: 0 is out of range; must be >= 1"):
        check_config_files([first, second], SCHEMA)
