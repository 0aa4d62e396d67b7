# Shared setup: validate the config before any job runs, and helpers the rule files use.
import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # lossgeom.configcheck needs only jsonschema
from lossgeom.configcheck import experiment_task, load_schema, validate_config  # noqa: E402
from lossgeom.errors import ConfigError  # noqa: E402

try:
    validate_config(
        config,
        load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"),
        sources=[str(f) for f in workflow.configfiles] or ["config.yaml"],
    )
except ConfigError as err:
    raise WorkflowError(str(err)) from None

EXPERIMENTS = sorted(config["experiments"])
# Every job can import the library (python -m lossgeom), in the uv environment and in the rules'
# conda environments alike, without installing the repository into them.
# (Snakemake formats the prefix like a shell command: doubled braces reach bash as single ones.)
LIBRARY_PATH = Path(workflow.basedir) / "src"
shell.prefix(f"set -euo pipefail; export PYTHONPATH={LIBRARY_PATH}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),


def with_device(*keys):
    """A config block as JSON for the CLI; the top-level device applies unless the block sets its own."""
    block = config
    for key in keys:
        block = block[key]
    settings = dict(block)
    settings.setdefault("device", config["device"])
    return json.dumps(settings, sort_keys=True)


def block_json(*keys):
    """A config block as JSON for the CLI (e.g. block_json("checks", "synthetic"))."""
    block = config
    for key in keys:
        block = block[key]
    return json.dumps(block, sort_keys=True)


def gpus(device):
    """GPUs to ask a scheduler for, for a job on ``device`` (the config's `gpus` wins when set)."""
    if config["gpus"] is not None:
        return config["gpus"]
    return 1 if str(device).startswith("cuda") else 0


def stage_gpus(*keys):
    """GPUs for a stage whose config block (e.g. "hessian") may override the top-level device."""
    block = config
    for key in keys:
        block = block[key]
    return gpus(block.get("device", config["device"]))


def training_gpus(wildcards):
    return gpus(config["experiments"][wildcards.experiment].get("train", {}).get("device", config["device"]))


def experiment_spec(name):
    """The experiment's config as JSON for the CLI; the top-level device applies unless train.device is set."""
    spec = json.loads(json.dumps(config["experiments"][name]))
    spec.setdefault("train", {}).setdefault("device", config["device"])
    return json.dumps(spec, sort_keys=True)


# Figures (workflow/rules/figures.smk): which experiments each shows, and the notebooks' parameters.
CLASSIFIERS = [e for e in EXPERIMENTS if experiment_task(config["experiments"][e]) == "classification"]
REGRESSORS = [e for e in EXPERIMENTS if experiment_task(config["experiments"][e]) == "regression"]


NOTEBOOKS = Path(workflow.basedir) / "notebooks"  # with the workflow, not the working directory (-d)


def per_experiment(pattern, experiments):
    return expand(pattern, experiment=experiments)


def notebook_parameters(figure, experiments):
    """Papermill parameters (as YAML/JSON): where the results are, what to show, where the figure goes."""
    parameters = {"results": "results", "output_pdf": f"results/figures/{figure}.pdf",
                  "output_png": f"results/figures/{figure}.png"}
    if experiments is not None:
        parameters["experiments"] = experiments
    return json.dumps(parameters)
