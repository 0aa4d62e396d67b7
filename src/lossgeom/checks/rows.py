"""Check rows: (check, case, quantity, theory, measured, tolerance, verdict), the one format of every check.

A check passes when |measured - theory| <= tolerance. Tolerances are either stated multiples
(:data:`SIGMAS`) of the standard errors of the Monte Carlo quantities involved or stated deterministic
bounds, never tuned to pass. A failed check is kept, with its numbers.

Example::

    >>> rows = [CheckRow.compare("demo", "case", "mean vs 1", 1.0, 1.3, standard_error=0.1),
    ...         CheckRow.within("demo", "case", "exact vs 2", 2.0, 2.0 + 1e-12, tolerance=1e-9)]
    >>> rows_to_frame(rows)["verdict"].tolist()
    ['pass', 'pass']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

SIGMAS = 4.0  # tolerance = SIGMAS standard errors


@dataclass
class CheckRow:
    check: str
    case: str
    quantity: str
    theory: float
    measured: float
    tolerance: float
    passed: bool
    detail: str = ""

    @classmethod
    def compare(cls, check, case, quantity, theory, measured, standard_error, detail=""):
        return cls.within(check, case, quantity, theory, measured, SIGMAS * standard_error, detail)

    @classmethod
    def within(cls, check, case, quantity, theory, measured, tolerance, detail=""):
        """A row with a stated tolerance (for deterministic estimates, where there is no standard error)."""
        return cls(check, case, quantity, float(theory), float(measured), float(tolerance),
                   bool(abs(measured - theory) <= tolerance), detail)


def rows_to_frame(rows: list[CheckRow]) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(r) for r in rows])
    frame["verdict"] = np.where(frame["passed"], "pass", "FAIL")
    return frame.drop(columns="passed")
