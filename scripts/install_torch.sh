#!/usr/bin/env bash
# Install torch into the virtual environment whose python is $1, without ever pulling a
# multi-gigabyte CUDA build onto a machine that has no GPU.
#   - a torch that the environment can already import is kept, whatever its build;
#   - with an NVIDIA GPU (nvidia-smi answers), the default PyPI build is installed;
#   - otherwise the CPU build "torch==$TORCH_VERSION+cpu" is installed: first from whatever
#     pip is configured with (a local wheel, a mirror), then from PyTorch's CPU index.
set -euo pipefail
PY="$1"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
if "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed: kept"
  exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "GPU found: installing torch==$TORCH_VERSION (CUDA build)"
  "$PY" -m pip install -q "torch==$TORCH_VERSION"
  exit 0
fi
echo "no GPU found: installing the CPU build torch==$TORCH_VERSION+cpu"
"$PY" -m pip install -q "torch==$TORCH_VERSION+cpu" 2>/dev/null \
  || "$PY" -m pip install -q "torch==$TORCH_VERSION+cpu" \
       --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
