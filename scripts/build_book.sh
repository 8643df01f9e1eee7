#!/usr/bin/env bash
# Build the book: create .venv if missing, execute every chapter in order with papermill on
# its defaults (or the parameters given), then render the HTML with jupyter-book.
# Options (see scripts/build_book.py): --params NAME, -p NAME VALUE, -f FILE, --only NN,
# --from NN, --render-only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_venv.sh
source scripts/cpu_isa.sh  # the CPU code path the committed notebooks ran on
# No MPLBACKEND here: the kernels must keep matplotlib-inline, or plt.show() draws nothing
# and the notebooks (and the rendered book) lose every figure.
export PATH="$PWD/.venv/bin:$PATH" PYDEVD_DISABLE_FILE_VALIDATION=1
exec python scripts/build_book.py "$@"
