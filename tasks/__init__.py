"""annealbench: tasks."""
