"""Training: the deterministic resumable loop, evaluation over a split, checkpoints and model files."""
