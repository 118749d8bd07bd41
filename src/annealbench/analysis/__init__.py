"""annealbench: analysis — statistics, figures, tables and the report, from the results store alone.

    annealbench report RESULTS_DIR [--reference CONFIG]... [--margin FRACTION | --margin-abs VALUE]
                                          [--out DIR] [--metric M] [--refuse-mixed-commits]

or, from Python::

    from annealbench.analysis import load_store, analyse, Options, write_report
    a = analyse(load_store("results/quick"), Options(references=("adamw[window=cosine]",), margin=0.02))
    a.verdict  # one row per (task or "all tasks", config, reference): better/worse/equivalent/inconclusive

Modules: `load` (loading and checking), `curves` (shared grid, bands, endpoints), `verdict` (the
rule: TOST, paired tests, ITT, Holm), `comparisons` (the declared comparison and its verdict
table), `differences` (the verdict's paired differences as the per-task tables and forest show
them, one section per reference), `hierarchical` (the Bayesian model across tasks), `paired`
(surviving runs tested against 0: a labelled secondary),
`maxt` (where along training), `aggregate` (task-level rank tests and scores), `fairtime` (steps
or seconds), `theory` (the mean-radius relation), `diagnostics` (trust region), `analyse` (all of
it), `claims`, `figures`, `tables`, `report`, `wandb_tables`. Statistics: docs/statistics.md.
This package never imports the training code (`tasks`, `optimizers`, `runner`).
"""

from annealbench.analysis.report import write_report
from annealbench.analysis.load import MixedCommitsWarning, Store, StoreError, load_store
from annealbench.analysis.analyse import Analysis, Options, analyse

__all__ = ["Analysis", "MixedCommitsWarning", "Options", "Store", "StoreError", "analyse", "load_store",
           "write_report"]
