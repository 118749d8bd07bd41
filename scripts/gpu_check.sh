#!/usr/bin/env bash
# The project's GPU figures in one table (src/annealbench/perf/gpu_check.py says what each part measures):
# the compiled MuPhi step against fused AdamW at 100M parameters, CIFAR-10 batch building,
# ResNet-18 and char-GPT training throughput, and a 2-minute cut of the paper-figures suite.
# About 6-8 minutes on one H100; the table goes to stdout, progress to stderr.
#
#   scripts/gpu_check.sh                 # on a machine with a CUDA device
#   scripts/gpu_check.sh --cpu-smoke     # every part at tiny sizes on the CPU (seconds)
#   scripts/gpu_check.sh --parts step resnet
#
# Python: $PYTHON if set, else the project's .venv, else python3 on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
  PY=.venv/bin/python
else
  PY=python3
fi
exec "$PY" -m annealbench.perf.gpu_check "$@"
