#!/usr/bin/env bash
# Run every test: lint, unit tests, nbval re-execution of the executed chapter notebooks,
# then render the HTML book from them and check every page in headless Chromium.
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
python -m pytest --nbval book/ --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider
python scripts/build_book.py --render-only
python -m pytest tests/browser -p no:cacheprovider
