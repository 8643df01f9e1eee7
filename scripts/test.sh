#!/usr/bin/env bash
# Run every test: lint, unit tests, nbval re-execution of the executed chapter notebooks (once
# as they are, once more for the measuring chapters with every timing perturbed), then render
# the HTML book from them and check every page in headless Chromium; last, JupyterLab as
# scripts/lab.sh starts it, driven in the same browser after a build of a scratch copy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_venv.sh
source scripts/cpu_isa.sh  # the CPU code path the committed notebooks ran on
bash scripts/ensure_chromium.sh
# No MPLBACKEND here: the kernels must keep matplotlib-inline, or plt.show() draws nothing
# and the notebooks (and the rendered book) lose every figure.
export PATH="$PWD/.venv/bin:$PATH" PYDEVD_DISABLE_FILE_VALIDATION=1

ruff check .
python -m pytest tests --ignore=tests/browser "$@"
bash scripts/nbval.sh book/
# Every time the chapters measure, multiplied by a seeded factor within +-30%: a compared
# output that depends on a live timing fails here, whichever machine runs the tests.
LENNA_PERTURB_TIMINGS=1 bash scripts/nbval.sh book/01_elasticnet_baseline.ipynb \
    book/02_binary_gate_convergence.ipynb book/03_dataset_generation.ipynb \
    book/05_your_device.ipynb book/06_latency_aware_darts.ipynb
python scripts/build_book.py --committed --render-only  # the committed notebooks, in _build/committed
python -m pytest tests/browser -p no:cacheprovider
