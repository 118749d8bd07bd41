"""One run, start to finish: the Lightning loop, run groups, checkpoints, the metrics logger,
W&B and provenance."""
