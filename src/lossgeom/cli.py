"""Command line: ``lossgeom <step> ...`` (also ``python -m lossgeom``). The workflow's rules call these.

Errors caused by bad input (config, data, checkpoints) are printed as one line, without a traceback,
and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from .errors import LossgeomError


def _settings(args: argparse.Namespace):
    return json.loads(args.settings)


def _train(args: argparse.Namespace) -> None:
    from .stages import train

    record = train.run(args.name, json.loads(args.spec), args.out_dir, progress=not args.no_progress)
    final = {k: round(v, 6) for k, v in record["final"].items()}
    logging.getLogger("lossgeom").info("finished %s: %s", args.name, final)


def _hessian(args: argparse.Namespace) -> None:
    from .stages import hessian

    settings = hessian.HessianSettings.from_mapping(_settings(args))
    hessian.run(args.model, settings, args.out_dir, log=logging.getLogger("lossgeom.hessian").info)


def _surfaces(args: argparse.Namespace) -> None:
    from .stages import surfaces

    settings = surfaces.SurfaceSettings.from_mapping(_settings(args))
    surfaces.run(args.model, args.eigenvectors, settings, args.out_dir, log=logging.getLogger("lossgeom.surfaces").info)


def _check_synthetic(args: argparse.Namespace) -> None:
    from .stages import check_synthetic

    rows = check_synthetic.run(check_synthetic.SyntheticCheckSettings.from_mapping(_settings(args)), args.out, args.samples_out)
    logging.getLogger("lossgeom.checks").info("%d checks, %d failed", len(rows), int((rows["verdict"] != "pass").sum()))


def _synthetic_landscapes(args: argparse.Namespace) -> None:
    from .stages import figure_data

    figure_data.run_landscapes(figure_data.LandscapeSettings.from_mapping(_settings(args)), args.out)


def _saddle_probability(args: argparse.Namespace) -> None:
    from .stages import figure_data

    settings = figure_data.SaddleProbabilitySettings.from_mapping(_settings(args))
    figure_data.run_saddle_probability(settings, args.out, log=logging.getLogger("lossgeom.checks").info)


def _check_model(args: argparse.Namespace) -> None:
    from .stages import check_model

    settings = check_model.ModelCheckSettings.from_mapping(_settings(args))
    check_model.run(args.model, args.hessian, settings, args.name, args.out, args.trace_out, args.sign_out,
                    log=logging.getLogger("lossgeom.checks").info)


def _check_curvature(args: argparse.Namespace) -> None:
    from .stages import check_curvature

    check_curvature.run(args.model, args.eigenvectors, args.surfaces, args.surfaces_meta, args.name, args.out,
                        args.meta_out, log=logging.getLogger("lossgeom.checks").info)


def _checks_table(args: argparse.Namespace) -> None:
    from .stages import checks_table

    checks_table.run(args.tables, args.out, args.signs, args.sign_out)


def _summarize_training(args: argparse.Namespace) -> None:
    from .io.atomic import write_csv
    from .stages import train

    write_csv(train.table(args.summaries), args.out)


def _summarize_hessian(args: argparse.Namespace) -> None:
    from .io.atomic import write_csv
    from .stages import hessian

    write_csv(hessian.table(args.summaries), args.out)


def _sweep_table(args: argparse.Namespace) -> None:
    from .stages import sweep_table

    sweep_table.run(json.loads(args.grid), json.loads(args.runs), args.out)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lossgeom", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    steps = parser.add_subparsers(dest="step", required=True)

    train = steps.add_parser("train", help="train one experiment (resumes from its checkpoint)")
    train.add_argument("--name", required=True, help="experiment name, used in messages")
    train.add_argument("--spec", required=True, help="experiment as JSON: {dataset, model, train}")
    train.add_argument("--out-dir", required=True, type=Path, help="writes model.pt, metrics.csv, train.json")
    train.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    train.set_defaults(func=_train)

    hessian = steps.add_parser("hessian", help="eigenpairs of both ends, trace and spectral density of a model")
    hessian.add_argument("--model", required=True, type=Path, help="model.pt written by the train step")
    hessian.add_argument("--settings", default="{}", help="the hessian config block as JSON")
    hessian.add_argument("--out-dir", required=True, type=Path, help="writes summary.json, eigenvectors.pt, ...")
    hessian.set_defaults(func=_hessian)

    surf = steps.add_parser("surfaces", help="loss/accuracy grids along random and Hessian directions")
    surf.add_argument("--model", required=True, type=Path)
    surf.add_argument("--eigenvectors", type=Path, help="hessian/eigenvectors.pt (needed for Hessian directions)")
    surf.add_argument("--settings", default="{}", help="the surfaces config block as JSON")
    surf.add_argument("--out-dir", required=True, type=Path, help="writes surfaces.npz, surfaces.json, tiles/")
    surf.set_defaults(func=_surfaces)

    synthetic = steps.add_parser("check-synthetic", help="theory vs measurement on quadratic saddles (check a)")
    synthetic.add_argument("--settings", default="{}", help="the checks.synthetic config block as JSON")
    synthetic.add_argument("--out", required=True, type=Path, help="CSV of check rows")
    synthetic.add_argument("--samples-out", type=Path, help="npz of the projected Hessians behind the rows")
    synthetic.set_defaults(func=_check_synthetic)

    landscapes = steps.add_parser("synthetic-landscapes", help="surfaces of confined saddles, random vs Hessian directions")
    landscapes.add_argument("--settings", default="{}", help="the figures.landscapes config block as JSON")
    landscapes.add_argument("--out", required=True, type=Path, help="npz of grids (and a .json of settings beside it)")
    landscapes.set_defaults(func=_synthetic_landscapes)

    probability = steps.add_parser("saddle-probability", help="P(random projection shows a saddle) vs N and tr(H)/N")
    probability.add_argument("--settings", default="{}", help="the figures.saddle_probability config block as JSON")
    probability.add_argument("--out", required=True, type=Path, help="CSV: Monte Carlo and central-limit values")
    probability.set_defaults(func=_saddle_probability)

    model_check = steps.add_parser("check-model", help="checks (b), (c) and the sign question for a trained model")
    model_check.add_argument("--name", required=True)
    model_check.add_argument("--model", required=True, type=Path)
    model_check.add_argument("--hessian", required=True, type=Path, help="hessian/summary.json of the model")
    model_check.add_argument("--settings", default="{}", help="the checks.models config block as JSON")
    model_check.add_argument("--out", required=True, type=Path, help="CSV of check rows")
    model_check.add_argument("--trace-out", required=True, type=Path, help="CSV of trace estimates vs samples S")
    model_check.add_argument("--sign-out", required=True, type=Path, help="JSON answering the sign question")
    model_check.set_defaults(func=_check_model)

    curvature = steps.add_parser("check-curvature", help="principal curvatures of a model's surface grids vs exact")
    curvature.add_argument("--name", required=True)
    curvature.add_argument("--model", required=True, type=Path)
    curvature.add_argument("--eigenvectors", required=True, type=Path, help="hessian/eigenvectors.pt of the model")
    curvature.add_argument("--surfaces", required=True, type=Path, help="surfaces/surfaces.npz of the model")
    curvature.add_argument("--surfaces-meta", required=True, type=Path, help="surfaces/surfaces.json of the model")
    curvature.add_argument("--out", required=True, type=Path, help="CSV of check rows")
    curvature.add_argument("--meta-out", required=True, type=Path, help="JSON with verdict counts and provenance")
    curvature.set_defaults(func=_check_curvature)

    table = steps.add_parser("checks-table", help="concatenate check CSVs into one table")
    table.add_argument("tables", nargs="+", type=Path)
    table.add_argument("--out", required=True, type=Path)
    table.add_argument("--signs", nargs="*", type=Path, default=[], help="sign_question.json files to tabulate")
    table.add_argument("--sign-out", type=Path, help="CSV of the sign question, one row per model")
    table.set_defaults(func=_checks_table)

    summarize = steps.add_parser("summarize-training", help="one CSV row per experiment from train.json files")
    summarize.add_argument("summaries", nargs="+", type=Path, help="train.json files")
    summarize.add_argument("--out", required=True, type=Path, help="CSV to write")
    summarize.set_defaults(func=_summarize_training)

    summarize_h = steps.add_parser("summarize-hessian", help="one CSV row per model from hessian/summary.json")
    summarize_h.add_argument("summaries", nargs="+", type=Path, help="hessian/summary.json files")
    summarize_h.add_argument("--out", required=True, type=Path, help="CSV to write")
    summarize_h.set_defaults(func=_summarize_hessian)

    sweep = steps.add_parser("sweep-table", help="one CSV row per run of a sweep: grid values and measurements")
    sweep.add_argument("--grid", required=True, help="JSON: run id -> {key path: value}")
    sweep.add_argument("--runs", required=True, help="JSON: run id -> its results folder")
    sweep.add_argument("--out", required=True, type=Path, help="CSV to write")
    sweep.set_defaults(func=_sweep_table)

    describe = steps.add_parser("describe", help="dataset shapes and parameter counts of experiments")
    describe.add_argument("--experiments", required=True, help="JSON mapping name -> experiment spec")
    describe.set_defaults(func=_describe)

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
