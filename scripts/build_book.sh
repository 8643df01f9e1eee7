#!/usr/bin/env bash
# Build the book: execute every chapter with papermill on its defaults, then render HTML.
# A chapter's executed notebook replaces the committed one only if the whole chapter succeeds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_venv.sh
export PATH="$PWD/.venv/bin:$PATH" MPLBACKEND=Agg PYDEVD_DISABLE_FILE_VALIDATION=1

for source in book/[0-9][0-9]_*.py; do
  chapter=${source%.py}
  echo "== executing ${chapter}"
  jupytext --quiet --to ipynb --update --output "${chapter}.ipynb" "$source" 2>/dev/null ||
    jupytext --quiet --to ipynb --output "${chapter}.ipynb" "$source"
  scratch=$(mktemp --suffix=.ipynb)
  if ! papermill --cwd book --progress-bar "${chapter}.ipynb" "$scratch" "$@"; then
    echo "error: chapter ${chapter} failed; its executed copy is kept at ${scratch}" >&2
    exit 1
  fi
  mv "$scratch" "${chapter}.ipynb"
done

echo "== rendering HTML"
jupyter-book build --warningiserror --keep-going . >/dev/null
echo "book: $PWD/_build/html/index.html"
