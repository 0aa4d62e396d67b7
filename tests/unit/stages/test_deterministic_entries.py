"""Every torch stage switches on deterministic torch (lossgeom.device.deterministic_torch) first thing, whether the
CLI or a library user calls it: its entry's first statement calls the helper, before CUDA can start."""

from __future__ import annotations

import argparse
import ast
import inspect
from pathlib import Path

import pytest

import lossgeom.device
from lossgeom import cli, stages
from lossgeom.training import loop

# CLI entries that compute nothing with torch: tables and checks of CSV/JSON files, figure data from closed
# forms in numpy, merges that assemble what the part jobs wrote. Every other entry must call the helper.
NO_TORCH_WORK = {
    "check_sweep": {"run", "run_trends"},
    "checks_table": {"run"},
    "connectivity": {"merge"},
    "figure_data": {"run_landscapes", "run_saddle_probability"},
    "hessian": {"table"},
    "surfaces": {"merge"},
    "taxonomy": {"run"},
    "train": {"table"},
}
NO_TORCH_COMMANDS = {"check-sweep", "check-trends", "checks-table", "connectivity-merge", "synthetic-landscapes",
                     "saddle-probability", "summarize-hessian", "merge-surfaces", "taxonomy", "summarize-training",
                     "sweep-table", "sweep-trajectory"}


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _outermost_calls(node: ast.AST, functions) -> set[str]:
    """The module's functions called outermost in ``node``: ``run(x, block(y))`` is run (block prepares an
    argument), ``write_csv(table(x), out)`` is table."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in functions:
        return {node.func.id}
    return set().union(*(_outermost_calls(child, functions) for child in ast.iter_child_nodes(node)))


def _dispatched(tree: ast.Module) -> set[str]:
    """The module's functions its subcommands dispatch to: ``set_defaults(func=...)`` naming one, or a lambda
    calling them."""
    functions, found = _functions(tree), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "set_defaults":
            for keyword in node.keywords:
                if keyword.arg == "func" and isinstance(keyword.value, ast.Name) and keyword.value.id in functions:
                    found.add(keyword.value.id)
                elif keyword.arg == "func" and isinstance(keyword.value, ast.Lambda):
                    found |= _outermost_calls(keyword.value.body, functions)
    return found


def _first_statement(function: ast.FunctionDef) -> ast.stmt:
    body = function.body
    docstring = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    return body[1] if docstring else body[0]


def _starts_deterministic(name: str, functions: dict[str, ast.FunctionDef], seen=()) -> bool:
    """The function's first statement calls deterministic_torch, or calls a function of the module that does
    (a CLI wrapper such as ``_command`` calling ``run``)."""
    called = {c.func.id for c in ast.walk(_first_statement(functions[name]))
              if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    return "deterministic_torch" in called or any(
        _starts_deterministic(f, functions, (*seen, name)) for f in called if f in functions and f not in seen)


def _stage_trees() -> dict[str, ast.Module]:
    return {module.__name__.rsplit(".", 1)[-1]: ast.parse(Path(module.__file__).read_text())
            for module in stages.modules()}


def test_every_torch_entry_starts_deterministic():
    trees = _stage_trees()
    torch_entries, missing = set(), []
    for name, tree in trees.items():
        functions = _functions(tree)
        for entry in sorted(_dispatched(tree) - NO_TORCH_WORK.get(name, set())):
            torch_entries.add(f"{name}.{entry}")
            if not _starts_deterministic(entry, functions):
                missing.append(f"{name}.{entry}")
    assert not missing, f"these stage entries do not call deterministic_torch() first: {missing}"
    assert {"hessian.run", "surfaces.run", "check_model.run", "check_curvature.run", "check_synthetic._command",
            "connectivity.run", "local_geometry.run", "run_trajectory.run", "sweep_batch.run", "early_saddle.run",
            "job_costs.run", "train._train_command"} <= torch_entries


def test_the_list_of_torch_free_entries_is_current():
    trees = _stage_trees()
    for name, entries in NO_TORCH_WORK.items():
        assert entries <= _dispatched(trees[name]), f"{name}: {entries - _dispatched(trees[name])} dispatch nowhere"


def test_training_starts_deterministic():
    tree = ast.parse(inspect.getsource(loop))
    assert _starts_deterministic("train_experiment", _functions(tree))


class Reached(Exception):
    """Raised by the helper's stand-in: the entry got to it before any work."""


def _minimal_argv(command: str, parser: argparse.ArgumentParser, tmp_path: Path) -> list[str]:
    """The command with every required argument given a placeholder: ``{}`` for JSON, else a path in ``tmp_path``."""
    argv = [command]
    for action in parser._actions:
        if not (action.required or (not action.option_strings and action.nargs not in ("?", "*"))):
            continue
        if action.type is cli._json_text or "JSON" in (action.help or ""):
            value = "{}"
        elif action.choices:
            value = str(next(iter(action.choices)))
        elif action.type is int:
            value = "0"
        else:
            value = str(tmp_path / f"missing_{action.dest}")
        argv += [action.option_strings[0], value] if action.option_strings else [value]
    return argv


def test_each_torch_command_calls_the_helper_before_any_work(tmp_path, monkeypatch):
    """Through the CLI, as the workflow runs them: every torch subcommand, with placeholder inputs, reaches the
    helper (a stand-in that stops there) before it reads any of them."""

    def stand_in():
        raise Reached

    for module in [*stages.modules(), loop, lossgeom.device]:
        if hasattr(module, "deterministic_torch"):
            monkeypatch.setattr(module, "deterministic_torch", stand_in)
    steps = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    stage_commands = set(steps.choices) - {"describe", "check-config", "defaults"}
    torch_commands = sorted(stage_commands - NO_TORCH_COMMANDS)
    assert NO_TORCH_COMMANDS <= stage_commands and len(torch_commands) >= 12
    for command in torch_commands:
        argv = _minimal_argv(command, steps.choices[command], tmp_path)
        with pytest.raises(Reached):
            cli.main(argv)
