"""annealbench: optimizers."""
