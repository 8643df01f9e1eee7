#!/usr/bin/env bash
# Re-execute chapter notebooks with nbval and compare their outputs with the committed ones.
#   bash scripts/nbval.sh book/                                    # every chapter
#   LENNA_PERTURB_TIMINGS=1 bash scripts/nbval.sh book/02_*.ipynb  # with perturbed timings
# Each notebook runs in its own scratch copy of book/, data/, figures/ and benchmarks/ (the
# kernel starts in the notebook's folder): what a chapter writes (results, figures, models,
# runs/) never touches the committed files, and every chapter reads the committed inputs, as
# it does when the book is built. Only runs/ (not committed) goes on from one notebook to the
# next of one call, as in the book command: chapter 6 reads the model chapter 5 adapted to
# this machine there. Then scripts/check_reproduction.py compares what the
# chapter wrote with the committed files, bit for bit where this CPU is of the same kind.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ $# -gt 0 ] || { echo "usage: bash scripts/nbval.sh NOTEBOOK_OR_FOLDER..." >&2; exit 2; }
notebooks=()
for arg in "$@"; do
  if [ -d "$arg" ]; then notebooks+=("${arg%/}"/[0-9][0-9]_*.ipynb); else notebooks+=("$arg"); fi
done
scratch_root=$(mktemp -d "${TMPDIR:-/tmp}/lenna-nbval.XXXXXX")
trap 'rm -rf "$scratch_root"' EXIT
echo "nbval (LENNA_PERTURB_TIMINGS=${LENNA_PERTURB_TIMINGS:-unset}) on ${#notebooks[@]} notebooks"
status=0
for notebook in "${notebooks[@]}"; do
  scratch="$scratch_root/$(basename "$notebook" .ipynb)"
  mkdir -p "$scratch"
  cp -r book data figures benchmarks "$scratch"/
  if [ -d "$scratch_root/runs" ]; then mv "$scratch_root/runs" "$scratch/runs"; fi
  started=$SECONDS
  if (cd "$scratch" && "$root/.venv/bin/python" -m pytest --nbval "book/$(basename "$notebook")" \
        --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider -q) &&
     "$root/.venv/bin/python" scripts/check_reproduction.py "$scratch"; then
    echo "== $notebook: passed in $((SECONDS - started)) s"
  else
    echo "== $notebook: FAILED after $((SECONDS - started)) s"
    status=1
  fi
  if [ -d "$scratch/runs" ]; then mv "$scratch/runs" "$scratch_root/runs"; fi
  rm -rf "$scratch"
done
exit $status
