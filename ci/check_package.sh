#!/usr/bin/env bash
# One member's CI: its tests in an exact venv from the lock, then the single-package wheel install check.
#   ci/check_package.sh ema-scale
set -euo pipefail
pkg="${1:?usage: ci/check_package.sh PACKAGE}"
cd "$(dirname "$0")/.."
unset PYTHONDONTWRITEBYTECODE
uv run --frozen --only-group dev nox -s "tests(package='${pkg}')" "wheel(package='${pkg}')"
