"""Input/output: atomic writes, provenance records, config validation and settings blocks."""
