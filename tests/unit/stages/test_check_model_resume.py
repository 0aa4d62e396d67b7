"""The model checks interrupted in any of their loops and started again give exactly the rows of an
uninterrupted run: each loop resumes with its samples so far and the shared generator's state."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from lossgeom.checks.models import model_rows
from lossgeom.stages import check_model, hessian, train

SPEC = {"dataset": {"name": "gaussian_mixture", "clusters": 3, "dim": 4, "n_train": 90, "n_test": 30},
        "model": {"name": "mlp", "hidden": [6]}, "train": {"epochs": 2, "batch_size": 30, "device": "cpu"}}
SETTINGS = check_model.ModelCheckSettings(projections=6, slices=8, hutchinson_samples=7, bias_slices=3, device="cpu")
quiet = lambda *_: None  # noqa: E731


class Slots:
    """In-memory slots; raises KeyboardInterrupt at the ``stop_at``-th save (a kill at that moment)."""

    def __init__(self, stop_at=None, states=None):
        self.stop_at, self.states, self.saves = stop_at, dict(states or {}), 0

    def __call__(self, key):
        outer = self

        class Slot:
            def load(self):
                return outer.states.get(key)

            def save(self, state, *, final=False):
                outer.states[key] = state
                outer.saves += 1
                if outer.saves == outer.stop_at:
                    raise KeyboardInterrupt

        return Slot()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("m")
    result = train.compute("m", SPEC, train.TrainPaths.in_directory(out), progress=False)
    h = hessian.compute(result.model, result.dataset, hessian.HessianSettings(k_top=2, k_bottom=1, hutchinson_samples=4,
                        slq_probes=2, slq_steps=6, device="cpu"), log=quiet)
    return result.model, result.dataset, json.loads(json.dumps(h.summary))


def run(trained, slots):
    model, dataset, summary = trained
    model64 = model.to(torch.float64)
    x, y = dataset.x_train.to(torch.float64), dataset.y_train
    knobs = {k: v for k, v in vars(SETTINGS).items() if k not in ("dtype", "device", "save_every_s")}
    knobs["relative_step"] = 1e-6
    measured = check_model.measure(model64, x, y, dataset.task, log=quiet, resume=slots, **knobs)
    rows, table, sign = model_rows(measured, summary, "m", seed=SETTINGS.seed)
    return rows, table, sign, measured.bias


@pytest.mark.parametrize("stop_at", [3, 9, 15])  # in the projections, in Hutchinson, in the slices
def test_a_check_run_stopped_anywhere_resumes_to_the_same_rows(trained, stop_at):
    rows, table, sign, bias = run(trained, Slots())
    stopped = Slots(stop_at=stop_at)
    with pytest.raises(KeyboardInterrupt):
        run(trained, stopped)
    again, again_table, again_sign, again_bias = run(trained, Slots(states=stopped.states))
    pd.testing.assert_frame_equal(rows, again)
    pd.testing.assert_frame_equal(table, again_table)
    pd.testing.assert_frame_equal(bias, again_bias)
    # the product method auto kept is recorded (with timings, when it timed: this run's measurements)
    choice, again_choice = sign.pop("hvp_choice"), again_sign.pop("hvp_choice")
    assert choice["method"] == again_choice["method"] == "forward-over-reverse"  # a few products: not timed
    assert sign == again_sign
