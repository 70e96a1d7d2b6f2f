#!/usr/bin/env bash
# Pinned third-party requirements of one member without the CUDA stack (torch, torchvision, triton, nvidia-*,
# cuda-*), for an install on a CPU-only machine whose torch comes from the PyTorch CPU index:
#   ci/cpu_requirements.sh ema-scale > requirements-cpu.txt
#   pip install torch torchvision --index-url <the PyTorch CPU index>      # first: the CPU builds
#   pip install -r requirements-cpu.txt dist/*.whl                          # then the rest, pinned
set -euo pipefail
pkg="${1:?usage: ci/cpu_requirements.sh PACKAGE}"
cd "$(dirname "$0")/.."
uv export --package "$pkg" --frozen --no-dev --no-emit-workspace --no-hashes --no-header -q |
  grep -v -E '^(torch|torchvision|torchaudio|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==' |
  grep -v -E '^\s+#' || true
