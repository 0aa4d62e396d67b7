"""Every caption of the HTML report is valid reStructuredText (Snakemake renders them with docutils; an error there,
such as |x| read as an undefined substitution, lands in the report). Checked here for all captions, also those of
figures the tiny config does not draw (F10)."""

from __future__ import annotations

import io
from pathlib import Path

import docutils.core
import pytest

CAPTIONS = sorted((Path(__file__).resolve().parents[2] / "workflow" / "report").glob("*.rst"))


@pytest.mark.parametrize("caption", CAPTIONS, ids=lambda p: p.name)
def test_caption_is_valid_restructured_text(caption):
    problems = io.StringIO()
    docutils.core.publish_doctree(caption.read_text(), settings_overrides={"warning_stream": problems, "report_level": 2})
    assert problems.getvalue() == "", problems.getvalue()


def test_every_figure_has_a_caption():
    notebooks = {p.stem for p in (CAPTIONS[0].parents[2] / "notebooks").glob("*.ipynb")}
    assert notebooks <= {p.stem for p in CAPTIONS}
