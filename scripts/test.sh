#!/usr/bin/env bash
# Run every test: lint, unit tests, and nbval re-execution of the executed chapter notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_venv.sh
export PATH="$PWD/.venv/bin:$PATH" MPLBACKEND=Agg PYDEVD_DISABLE_FILE_VALIDATION=1

ruff check .
python -m pytest tests "$@"
python -m pytest --nbval book/ --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider
