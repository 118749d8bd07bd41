"""Dependency-free definitions every layer may import (numpy at most; never torch).

`optimizers`, `tasks`, `runner` and `analysis` each keep to their place in the data flow, but
a formula or a format that two of them need lives here once, so that it cannot drift:

- `annealbench.common.window_formulas`: the window family Ϝ(r) as pure numpy functions of progress (the optimizer
  steps with them, the analysis draws and checks them with the very same code);
- `annealbench.common.store_schema`: the results store's columns, the run key, and its formatting and parsing.
"""
