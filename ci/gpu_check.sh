#!/usr/bin/env bash
# The first-GPU check: everything that needs CUDA, in one call, with one report file.
#
#   ci/gpu_check.sh [REPORT]          # default report: gpu-report/REPORT.md (plus one log per step)
#
# On a machine with at least one NVIDIA GPU and in well under 8 minutes with a warm uv cache, it
#   1. syncs the workspace with the CUDA-only extras (attn2mamba[cuda]: mamba-ssm, causal-conv1d, flash-attn);
#      a kernel that fails to build is reported and its tests skip, the rest goes on;
#   2. runs every test that needs CUDA (the tests that skip without CUDA, selected by name/marker);
#   3. runs each trainer's smoke preset with --device cuda (bf16 autocast, SDPA/FlashAttention paths);
#   4. runs each package's benchmark (their CUDA rows appear when a GPU is present);
#   5. with two or more GPUs, a 2-process nccl torchrun smoke of the core's toy trainer and of ema-scale.
# Every step is time-boxed; the report lists each step's exit status, time and the tail of its log, so the
# numbers can go into the READMEs. Nothing here runs in CI (CI has no GPU and never installs the cuda extra).
set -uo pipefail
cd "$(dirname "$0")/.."
unset PYTHONDONTWRITEBYTECODE
export PYTHONUNBUFFERED=1
out="${1:-gpu-report/REPORT.md}"
logs="$(dirname "$out")"
mkdir -p "$logs"
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
start=$(date +%s)
{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -5
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo '```'
  echo
  echo "| step | exit | seconds |"
  echo "|---|---|---|"
} >"$out"

step() {  # step NAME TIMEOUT_S COMMAND...
  local name="$1" limit="$2"
  shift 2
  local log="$logs/${name//[^A-Za-z0-9_.-]/_}.log" t0 rc
  t0=$(date +%s)
  timeout "$limit" "$@" >"$log" 2>&1
  rc=$?
  echo "| $name | $rc | $(($(date +%s) - t0)) |" >>"$out"
  echo "== $name: exit $rc" >&2
}

PKGS=(ema-scale polyview attn2mamba policy-transfer ewc-ssl part cdslm affective-music)
present=()
for p in "${PKGS[@]}"; do [ -f "packages/$p/pyproject.toml" ] && present+=("$p"); done

step sync-all 240 uv sync --frozen --all-packages --all-groups
step sync-cuda-extra 300 uv sync --frozen --all-packages --all-groups --extra cuda
step torch-cuda 60 uv run --frozen --no-sync python -c \
  "import torch; assert torch.cuda.is_available(); print(torch.__version__, torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())"

# every CUDA-only test (they skip without CUDA): the core's and each package's, by keyword
step tests-cuda-core 180 uv run --frozen --no-sync --package paperkit python -m pytest shared/core/tests -q -k "cuda or gpu"
for p in "${present[@]}"; do
  step "tests-cuda-$p" 240 uv run --frozen --no-sync --package "$p" python -m pytest "packages/$p/tests" -q -k "cuda or gpu or kernel"
done

# each trainer's smoke preset on the GPU
for p in "${present[@]}"; do
  step "smoke-cuda-$p" 240 uv run --frozen --no-sync --package "$p" train --preset smoke --device cuda --out "$logs/runs/$p" --threads 4
done

# the benchmarks (CUDA rows when a GPU is present)
for p in "${present[@]}"; do
  for b in packages/"$p"/bench/*.py; do
    [ -f "$b" ] && step "bench-$p-$(basename "$b" .py)" 240 uv run --frozen --no-sync --package "$p" python "$b"
  done
done

# two GPUs: nccl under torchrun
if [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -ge 2 ]; then
  step torchrun-nccl-ema-scale 300 uv run --frozen --no-sync --package ema-scale torchrun --standalone --nproc-per-node 2 \
    --no-python train --preset smoke --device cuda --out "$logs/runs/ema-scale-ddp"
else
  echo "| torchrun-nccl | skipped: one GPU | 0 |" >>"$out"
fi

{
  echo
  echo "Total: $(($(date +%s) - start)) s. Logs beside this file; the tail of each failed step:"
  for log in "$logs"/*.log; do
    if grep -qiE "error|failed|Traceback" "$log"; then
      echo
      echo "### $(basename "$log")"
      echo '```'
      tail -n 25 "$log"
      echo '```'
    fi
  done
  echo
  echo "Smoke summaries (claims, provenance) are under $logs/runs/*/summary.json; bench output in bench-*.log."
} >>"$out"
echo "report: $out"
