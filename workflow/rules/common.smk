# The plan: the config validated and every decision the rules need, made by the library before any job runs
# (lossgeom.planning, tested on its own). The rule files only read PLAN; what is left here turns its answers into
# Snakemake's objects (ancient, directory, input functions).
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The planner needs jsonschema, yaml, numpy and pandas; torch only where a sweep needs a model built (its N, its steps).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from lossgeom.errors import ConfigError  # noqa: E402
from lossgeom.planning import make_plan  # noqa: E402
from lossgeom.planning.figures import figure_inputs, notebook_parameters, report_files  # noqa: E402
from lossgeom.planning.checks import TABLE_CHECKS  # noqa: E402
from lossgeom.planning.plan import PRIORITY, runtime_from_costs  # noqa: E402

try:
    PLAN = make_plan(
        config,
        sources=[str(f) for f in workflow.configfiles] or ["config.yaml"],
        schema=Path(workflow.basedir) / "workflow/schemas/config.schema.yaml",
    )
except ConfigError as err:
    raise WorkflowError(str(err)) from None
CONFIG = PLAN.config  # the config with the schema's defaults filled in

# `snakemake --report` shows a finished run: before one, one line instead of a warning per missing file and a traceback.
# (Snakemake gives a Snakefile no other sign of report mode than its command line.)
if any(arg.startswith("--report") and not arg.startswith("--report-") for arg in sys.argv):
    MISSING = [path for path in report_files(PLAN) if not Path(path).exists()]
    if MISSING:
        raise WorkflowError(
            f"{MISSING[0]} (and {len(MISSING) - 1} more of the report's {len(report_files(PLAN))} figures and tables) "
            "do not exist yet: run the workflow first, `snakemake --cores all` with the same --configfile, then --report"
        )
SWEEPS = PLAN.sweeps

# Every job can import the library (python -m lossgeom), in the uv environment and in the rules' conda
# environments alike, without installing the repository into them. Quoted: the project's path may hold spaces.
# (Snakemake formats the prefix like a shell command: doubled braces reach bash as single ones; the f-string's part
# has none.)
# $LOSSGEOM_CONFIGFILES: the config files of this run, for the library's advice on rebuilding a file.
CONFIG_FILES = " ".join(shlex.quote(source) for source in PLAN.sources)


def for_prefix(text):
    """A shell word for the prefix, with braces doubled for Snakemake's formatting."""
    return shlex.quote(text).replace("{", "{{").replace("}", "}}")


shell.prefix(
    f"set -euo pipefail; export PYTHONPATH={for_prefix(str(Path(workflow.basedir) / 'src'))}"
    "${{PYTHONPATH:+:$PYTHONPATH}}; "
    f"export LOSSGEOM_CONFIGFILES={for_prefix(CONFIG_FILES)}; "
)

# With the workflow, not the working directory (-d); relative to the working directory, so that a copied or moved
# project (the usual run from its root) sees the same input paths and reruns nothing.
NOTEBOOKS = Path(os.path.relpath(Path(workflow.basedir) / "notebooks"))


def one_of(names):
    """A wildcard constraint matching exactly these names (none: matches nothing)."""
    return "|".join(names) or "(?!)"


wildcard_constraints:
    experiment=one_of(PLAN.experiments),
    sweep=one_of(SWEEPS),
    run="[A-Za-z0-9_.=+-]+",


def data_input(spec):
    """{"data": the download record} for a spec whose dataset downloads, else nothing. ancient: a newer record (a
    repeated download) does not make every job that reads the data run again."""
    record = PLAN.data_record(spec)
    return {"data": ancient(record)} if record else {}


def job_costs_input(wildcards):
    """With `runtimes: {estimate: true}`, a torch job reads its runtime from the experiment's measured costs (an
    ancient input: remeasuring them changes runtimes, not results)."""
    if not PLAN.estimate_runtimes:
        return {}
    return {"costs": ancient(f"results/{wildcards.experiment}/job_costs.json")}


def runtime_of(job, fallback):
    """The `runtime` resource of `job`'s rule: its estimate when the rule has the costs as input, else `fallback`.
    Snakemake evaluates it again once the costs file exists."""

    def runtime(wildcards, input):
        if "costs" not in input.keys():
            return fallback
        try:
            return runtime_from_costs(input.costs, job)
        except ConfigError as err:
            raise WorkflowError(str(err)) from None

    return runtime


def surfaces_input(wildcards):
    """Rule surfaces: the parts' records to merge (surfaces.parts > 1), else the model and its eigenvectors."""
    if PLAN.surface_parts > 1:
        return {
            "records": expand(
                "results/{experiment}/surfaces/parts/part{part}.json",
                experiment=wildcards.experiment,
                part=range(PLAN.surface_parts),
            )
        }
    return {
        **job_costs_input(wildcards),
        "model": f"results/{wildcards.experiment}/model.pt",
        "eigenvectors": f"results/{wildcards.experiment}/hessian/eigenvectors.pt",
    }


def surfaces_command(wildcards, input, output):
    """Rule surfaces' step: merge the parts, or compute every tile."""
    out_dir = shlex.quote(str(Path(output.grids).parent))
    if PLAN.surface_parts > 1:
        return f"merge-surfaces {' '.join(map(shlex.quote, input.records))} --out-dir {out_dir}"
    return (
        f"surfaces --model {shlex.quote(input.model)} --eigenvectors {shlex.quote(input.eigenvectors)} "
        f"--settings {shlex.quote(PLAN.with_device('surfaces'))} --out-dir {out_dir}"
    )


def batch_outputs(sweep, index):
    """Every file the runs of a batch job write (their snapshots folders as directories)."""
    folders = set(PLAN.each_run(sweep, "snapshots"))
    return [
        directory(path) if path in folders else path
        for run_id in SWEEPS[sweep].batches[index]
        for path in PLAN.run_files(sweep, run_id)
    ]
