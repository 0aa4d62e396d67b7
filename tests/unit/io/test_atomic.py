"""Atomic writes leave no half-written file, and JSON results are strict JSON (no NaN literal)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lossgeom.io.atomic import write_json


def test_non_finite_numbers_become_null_so_the_file_is_valid_json(tmp_path):
    path = tmp_path / "r.json"
    write_json({"lambda_min": float("nan"), "values": [1.0, float("inf"), np.float64("nan")], "n": np.int64(3),
                "nested": {"x": -float("inf"), "ok": 0.5}}, path)
    strict = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"invalid JSON literal {name}"))
    assert strict == {"lambda_min": None, "values": [1.0, None, None], "n": 3, "nested": {"x": None, "ok": 0.5}}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "r.json"
    write_json({"a": 1}, path)
    with pytest.raises(TypeError):
        write_json({"a": object.__new__(type("Unserializable", (), {"__str__": None}))}, path)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
