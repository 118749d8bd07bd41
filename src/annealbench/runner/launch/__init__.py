"""Where runs execute: jobs (one seed or a run group), the local worker pool, SLURM job arrays,
device assignment and sweep progress."""
