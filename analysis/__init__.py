"""annealbench: analysis — statistics, figures, tables and the report, from the results store alone.

    python -m analysis report RESULTS_DIR [--baseline NAME] [--out DIR] [--metric M] [--refuse-mixed-commits]

or, from Python::

    from analysis import load_store, analyse, Options, write_report
    a = analyse(load_store("results/quick"), Options(baseline="adamw[window=cosine]"))

Modules: `store` (loading and checking), `curves` (shared grid, bands, endpoints), `paired`
(against the baseline), `maxt` (where along training), `aggregate` (across tasks), `diagnostics`
(trust region), `summary` (all of it), `claims`, `figures`, `tables`, `report`, `wandb_tables`.
This package never imports the training code (`tasks`, `optimizers`, `bench`).
"""

from analysis.report import write_report
from analysis.store import MixedCommitsWarning, Store, StoreError, load_store
from analysis.summary import Analysis, Options, analyse

__all__ = ["Analysis", "MixedCommitsWarning", "Options", "Store", "StoreError", "analyse", "load_store",
           "write_report"]
