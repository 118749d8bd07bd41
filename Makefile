# annealbench — `make help` lists the targets.
# On a fresh machine `make bench` and `make test` do all the set-up: they create the virtual
# environment in $(VENV) and install the project into it when pyproject.toml changes.
# `make venv TORCH=cu126` (any cuXYZ, or cpu) installs that build of torch from PyTorch's index
# whatever this machine has: a login node without a GPU sets up the environment of its GPU nodes.

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.annealbench-installed
SUITE    ?= quick
RESULTS  ?= results/$(SUITE)
WORKERS  ?=
GRID     ?=
PYTEST_ARGS ?= -m "not slow"
TORCH    ?=
# the version scripts/install_torch.sh installs, so both ways give the same torch
TORCH_VERSION ?= $(shell sed -n 's/^TORCH_VERSION="$${TORCH_VERSION:-\([^}]*\)}"$$/\1/p' scripts/install_torch.sh)
TORCH_INDEX   := https://download.pytorch.org/whl/$(TORCH)
TORCH_STAMP   := $(VENV)/.annealbench-torch-$(TORCH)

.DEFAULT_GOAL := help
.PHONY: help venv test test-all bench bench-broad figures perf lock clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

LOCK     := requirements-lock.txt

$(STAMP): pyproject.toml $(LOCK) scripts/install_torch.sh $(if $(TORCH),$(TORCH_STAMP))
	@test -x $(PY) || { \
	  if $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
	    echo "reusing the torch installed for $(PYTHON)"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else $(PYTHON) -m venv $(VENV); fi; }
	$(if $(TORCH),,@scripts/install_torch.sh $(PY))
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev]'
	@touch $(STAMP)

# TORCH=cuXYZ (or cpu): that build from PyTorch's index, replacing any other; once per build.
$(TORCH_STAMP):
	@case "$(TORCH)" in cu[0-9]*|cpu) ;; *) echo "TORCH must be cuXYZ (e.g. cu126, cu128) or cpu, got '$(TORCH)'" >&2; exit 2;; esac
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip uninstall -q -y torch
	$(PY) -m pip install -q "torch$(if $(TORCH_VERSION),==$(TORCH_VERSION))" --index-url $(TORCH_INDEX)
	@rm -f $(VENV)/.annealbench-torch-*
	@touch $@

venv: $(STAMP) ## create/refresh the virtual environment (.venv) with the project installed (TORCH=cu126: CUDA 12.6 torch)

test: $(STAMP) ## run the test suite without the slow tests (gpu tests skip without a GPU)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(STAMP) ## run every test, the slow ones included
	$(PY) -m pytest

bench: $(STAMP) ## run the quick suite on embedded data, then the analysis and report
	$(PY) -m annealbench run $(SUITE) --out $(RESULTS) $(if $(WORKERS),--workers $(WORKERS))
	$(PY) -m annealbench report $(RESULTS) --grid window

bench-broad: $(STAMP) ## the broad suite: 13 offline tasks at two budgets x 6 windows (resumable), then its report
	$(PY) -m annealbench run broad --out results/broad $(if $(WORKERS),--workers $(WORKERS))
	$(PY) -m annealbench report results/broad

figures: $(STAMP) ## rebuild every figure, table and report.html from the results store alone (GRID=factor adds its panel grid)
	$(PY) -m annealbench figures $(RESULTS) $(if $(GRID),--grid $(GRID))

perf: $(STAMP) ## run the speed benchmarks and write docs/performance.md
	$(PY) -m annealbench perf --out docs/performance.md

lock: ## rewrite requirements-lock.txt from .venv (after `pip install -U` there): the tested set every install is pinned to
	@{ echo "# The tested set: every install (make venv/test/bench) is constrained to these versions."; \
	   echo "# Regenerate with 'make lock' after changing pyproject.toml, then run 'make test'."; \
	   $(PY) -m pip freeze --exclude-editable | sed 's/^torch==\([^+]*\)+.*/torch==\1/' | LC_ALL=C sort -f; } > $(LOCK).tmp
	@mv $(LOCK).tmp $(LOCK)

clean: ## remove caches (keeps .venv and results/)
	rm -rf .pytest_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
