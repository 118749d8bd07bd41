"""annealbench: analysis."""
