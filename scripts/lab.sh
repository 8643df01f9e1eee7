#!/usr/bin/env bash
# Start JupyterLab on the book, from the project's venv, with the kernel on the CPU code path
# the committed notebooks ran on. A chapter's .py opens as a notebook (jupytext pairs it with
# its .ipynb); JupyterLab makes no network call (scripts/jupyterlab/README.md).
#   bash scripts/lab.sh                    # then open the URL it prints
#   bash scripts/lab.sh --port 8890 ...    # any other `jupyter lab` option
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_venv.sh
source scripts/cpu_isa.sh
export PATH="$PWD/.venv/bin:$PATH" PYDEVD_DISABLE_FILE_VALIDATION=1
# Containers often run as root, which JupyterLab refuses without being told.
[ "$(id -u)" != 0 ] || set -- --allow-root "$@"
exec jupyter lab "$@"
