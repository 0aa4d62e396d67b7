"""Command line: ``lossgeom <step> ...`` (also ``python -m lossgeom``). The workflow's rules call these.

Argument parsing and dispatch only: every workflow step's subcommand is declared by its module in
:mod:`lossgeom.stages`; ``describe`` and ``defaults`` are here.

Errors caused by bad input (config, data, checkpoints) are printed as one line, without a traceback,
and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path

import torch

from . import stages
from .errors import LossgeomError


def _describe(args: argparse.Namespace) -> None:
    """Print dataset sizes and parameter counts of experiments without training them."""
    from .problems.data import load_dataset
    from .problems.models import build_model, count_parameters
    from .training.loop import resolve_experiment

    experiments = json.loads(args.experiments)
    for name, spec in experiments.items():
        exp = resolve_experiment(spec)
        ds = load_dataset(exp["dataset"])
        n = count_parameters(build_model(exp["model"], ds.input_shape, ds.output_dim))
        print(f"{name}: {exp['model']['name']} on {ds.name} {list(ds.input_shape)}, {n} parameters")


def _defaults(args: argparse.Namespace) -> None:
    """Print every settings block of the config with its defaults, as YAML (the one source of these defaults)."""
    import yaml

    from .stages.config_blocks import all_defaults

    print(yaml.safe_dump(all_defaults(), sort_keys=False, default_flow_style=False), end="")


# arguments that carry JSON text (the two settings blocks: run-trajectory and sweep-batch)
JSON_ARGUMENTS = {"settings", "spec", "grid", "runs", "experiments", "hessian_settings", "local_settings"}


def _json_text(text: str) -> str:
    """The text itself, once it is known to parse as JSON (argparse then reports a bad one in one line)."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"  # in the repository


def _check_config(args: argparse.Namespace) -> None:
    """Check config files as the workflow will: YAML syntax (file, line, column), keys, types, ranges, then the whole
    plan (every generated run, the sweeps' stages and declared checks), so a config called valid here is planned."""
    if importlib.util.find_spec("jsonschema") is None:
        raise LossgeomError("needs jsonschema, which the workflow installs: pip install 'lossgeom[workflow]'")
    if not args.schema.is_file():
        raise LossgeomError(f"{args.schema}: no config schema there; pass --schema workflow/schemas/config.schema.yaml "
                            "of a clone of the repository (a pip-installed lossgeom does not ship the workflow)")
    from .io.configcheck import read_config_files
    from .planning import make_plan

    sources = [str(path) for path in args.files]
    plan = make_plan(read_config_files(args.files), sources=sources, schema=args.schema)
    runs = sum(len(sweep.runs) for sweep in plan.sweeps.values())
    print(f"{', '.join(sources)}: valid; {len(plan.experiments)} experiments, {len(plan.sweeps)} sweeps ({runs} runs)")


# lossgeom.settings.settings_help heads a step's epilog "keys of --settings (...)". Where the block is one object
# inside a JSON argument instead of the whole --settings, the head says so (tests/unit/test_cli_help.py).
SETTINGS_HEADS = {
    "train": 'keys of the "train" object of --spec (the config\'s experiments.<name>.train block), with their defaults:',
    "job-costs": 'keys of the "runtimes" object of --settings (the config\'s runtimes block), with their defaults:',
}


def _settings_head(name: str, command: argparse.ArgumentParser) -> None:
    if name in SETTINGS_HEADS and command.epilog:
        command.epilog = SETTINGS_HEADS[name] + "\n" + command.epilog.partition("\n")[2]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lossgeom", description="Loss-landscape geometry with Hessian directions: "
                                     "the steps of the Snakemake workflow (also python -m lossgeom).")
    parser.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    steps = parser.add_subparsers(dest="step", required=True)

    for stage in stages.modules():  # each workflow step declares its own subcommands
        stage.add_commands(steps)
    for command in steps.choices.values():  # every JSON argument is checked on the way in, like any other
        for action in command._actions:
            if action.dest in JSON_ARGUMENTS:
                action.type = _json_text
    for name, command in steps.choices.items():
        _settings_head(name, command)

    describe = steps.add_parser("describe", help="dataset shapes and parameter counts of experiments")
    describe.add_argument("--experiments", required=True, help="JSON mapping name -> experiment spec")
    describe.set_defaults(func=_describe)

    check = steps.add_parser("check-config", help="check config files as the workflow will, naming file and line")
    check.add_argument("files", nargs="+", type=Path, help="config files, in the order given to snakemake's --configfile")
    check.add_argument("--schema", type=Path, default=SCHEMA,
                       help="the workflow's config schema (default: workflow/schemas/config.schema.yaml of the clone "
                            "this lossgeom runs from)")
    check.set_defaults(func=_check_config)

    defaults = steps.add_parser("defaults", help="every settings block of the config with its default values (YAML)")
    defaults.set_defaults(func=_defaults)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except LossgeomError as err:
        print(f"lossgeom {args.step}: error: {err}", file=sys.stderr)
        return 2
    return 0
