"""annealbench's runner: suite files → run specs → one Lightning loop → the results store.

    python -m bench run SUITE [--out DIR] [--workers N] [--launcher local|slurm] ...
    python -m bench status DIR [--verify]
    python -m bench list
    python -m bench train TASK OPTIMIZER [--preset P] [--seed S] [--set key=value ...]

Modules: `suite` (YAML → dataclasses), `validate` (against the registries), `spec` (run ids and
derived seeds), `store`/`atomic`/`lock`/`status` (the results directory), `execute` (one run),
`pool`/`slurm` (launchers), `selection` (stage tune → lr), `sweep` (the two stages), `cli`.
"""
