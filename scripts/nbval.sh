#!/usr/bin/env bash
# Re-execute chapter notebooks with nbval and compare their outputs with the committed ones.
#   bash scripts/nbval.sh book/                                  # every chapter
#   LENNA_PERTURB_TIMINGS=1 bash scripts/nbval.sh book/02_*.ipynb  # with perturbed timings
# The chapters run in a scratch copy of book/, data/, figures/ and benchmarks/ (the kernel
# starts in the notebook's folder), so what they write (results, figures, models, runs/)
# never touches the committed files.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ $# -gt 0 ] || { echo "usage: bash scripts/nbval.sh NOTEBOOK_OR_FOLDER..." >&2; exit 2; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/lenna-nbval.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp -r book data figures benchmarks "$scratch"/
echo "nbval in $scratch (LENNA_PERTURB_TIMINGS=${LENNA_PERTURB_TIMINGS:-unset}): $*"
started=$SECONDS
(cd "$scratch" && "$root/.venv/bin/python" -m pytest --nbval "$@" \
    --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider)
echo "nbval took $((SECONDS - started)) s"
