"""Check rows: (check, case, quantity, theory, measured, tolerance, verdict), the one format of every check.

Every row has one of three verdicts:

- ``pass``: |measured - theory| <= tolerance, and the tolerance is small enough to tell the claim from its
  negation (below |theory|, so a measurement of 0 or of the opposite sign would have failed);
- ``FAIL``: |measured - theory| > tolerance. A failed check is kept, with its numbers;
- ``unresolved``: the measurement cannot decide: the tolerance is at least |theory| (for a claim of a
  non-zero value or a sign), an input's uncertainty is unknown (NaN), or an input did not converge.

A one-sided claim (measured above a bound, or below it; :meth:`CheckRow.exceeds`) has the bound as its theory
and the measurement's stated uncertainty as its tolerance: ``pass`` when the claim holds by more than the
tolerance, ``FAIL`` when the opposite holds by more than the tolerance, ``unresolved`` in between.

A claim that something is zero (theory 0, or zero up to rounding: |theory| <= 1e-9 tolerance) is judged
against the size that matters for it when the row states one (``scale``: e.g. a finite-difference bias
against tr(H) itself): unresolved when the tolerance reaches that size, else decided by the tolerance.
Tolerances are stated multiples (:data:`SIGMAS`) of the standard errors of the Monte
Carlo quantities involved, with the uncertainties of their inputs propagated, or stated deterministic
bounds; never tuned to pass.

Example::

    >>> rows = [CheckRow.compare("demo", "case", "mean vs 1", 1.0, 1.3, standard_error=0.1),
    ...         CheckRow.within("demo", "case", "exact vs 2", 2.0, 2.0 + 1e-12, tolerance=1e-9),
    ...         CheckRow.compare("demo", "case", "mean vs 0.1", 0.1, 0.3, standard_error=0.1),
    ...         CheckRow.compare("demo", "case", "mean vs 1", 1.0, 1.5, standard_error=0.1),
    ...         CheckRow.exceeds("demo", "case", "peak / ends > 1", 1.0, 1.8, margin=0.2)]
    >>> rows_to_frame(rows)["verdict"].tolist()
    ['pass', 'pass', 'unresolved', 'FAIL', 'pass']
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

SIGMAS = 4.0  # tolerance = SIGMAS standard errors


VERDICTS = ("pass", "FAIL", "unresolved")


@dataclass
class CheckRow:
    check: str
    case: str
    quantity: str
    theory: float
    measured: float
    tolerance: float
    verdict: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @classmethod
    def compare(cls, check, case, quantity, theory, measured, standard_error, detail="", *, decidable=True, scale=None):
        """A row whose tolerance is :data:`SIGMAS` standard errors (NaN or None: unknown, so unresolved)."""
        se = float("nan") if standard_error is None else float(standard_error)
        return cls.within(check, case, quantity, theory, measured, SIGMAS * se, detail, decidable=decidable, scale=scale)

    @classmethod
    def within(cls, check, case, quantity, theory, measured, tolerance, detail="", *, decidable=True, scale=None):
        """A row with a stated tolerance. ``decidable=False`` (e.g. an eigensolver that did not converge) makes
        it unresolved whatever the numbers say, with the reason in ``detail``; ``scale`` is the size a claim
        of zero is judged against."""
        theory, measured, tolerance = float(theory), float(measured), float(tolerance)
        return cls(check, case, quantity, theory, measured, tolerance,
                   verdict(theory, measured, tolerance, decidable, scale), detail)


    @classmethod
    def exceeds(cls, check, case, quantity, bound, measured, margin, detail="", *, above=True, decidable=True):
        """A one-sided row: the claim measured > ``bound`` (``above``; else measured < ``bound``), decided beyond
        ``margin``, the measurement's stated uncertainty (NaN: unknown, so unresolved)."""
        bound, measured, margin = float(bound), float(measured), float(margin)
        excess = (measured - bound) if above else (bound - measured)
        if not decidable or not all(math.isfinite(v) for v in (bound, measured, margin)):
            found = "unresolved"
        else:
            found = "pass" if excess > margin else "FAIL" if excess < -margin else "unresolved"
        return cls(check, case, quantity, bound, measured, margin, found, detail)


def verdict(theory: float, measured: float, tolerance: float, decidable: bool = True, scale: float | None = None) -> str:
    """pass, FAIL or unresolved, as the module docstring states."""
    if not decidable or not all(math.isfinite(v) for v in (theory, measured, tolerance)):
        return "unresolved"
    zero_claim = abs(theory) <= 1e-9 * tolerance
    reference = abs(scale) if zero_claim and scale is not None else None if zero_claim else abs(theory)
    if reference is not None and tolerance >= reference:
        return "unresolved"
    return "pass" if abs(measured - theory) <= tolerance else "FAIL"


def rows_to_frame(rows: list[CheckRow]) -> pd.DataFrame:
    """The rows as a table: check, case, quantity, theory, measured, tolerance, detail, verdict."""
    frame = pd.DataFrame([asdict(r) for r in rows])
    return frame[[c for c in frame.columns if c != "verdict"] + ["verdict"]]


def count_verdicts(frame: pd.DataFrame) -> dict[str, int]:
    """How many rows have each verdict (all three named, zeros included)."""
    counts = frame["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}
