"""annealbench: bench."""
