"""Theory-vs-measurement checks: rows with verdicts, one module per family of claims."""
