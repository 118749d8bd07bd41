"""annealbench's runner: suite files → run specs → one Lightning loop → the results store.

    annealbench run SUITE [--out DIR] [--workers N] [--launcher local|slurm] ...
    annealbench status DIR [--verify]
    annealbench list
    annealbench train TASK OPTIMIZER [--preset P] [--seed S] [--set key=value ...]

Modules: `suite` (YAML → dataclasses), `validate` (against the registries), `spec` (run ids and
derived seeds), `store`/`atomic`/`lock`/`status` (the results directory), `execute` (one run),
`pool`/`slurm` (launchers), `selection` (stage tune → lr), `sweep` (the two stages), `cli`.
"""
