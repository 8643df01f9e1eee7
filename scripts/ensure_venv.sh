#!/usr/bin/env bash
# Create .venv at the top of the repository if missing and (re)install the package with its
# book, test and cluster extras (the tests run sweeps on Dask and submitit) whenever
# pyproject.toml has changed since the last install; then install the project's JupyterLab
# settings into it (scripts/jupyterlab/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 is required (python3.11 or python3 on PATH)" >&2
  return 1
}

if [ ! -x .venv/bin/python ]; then
  python=$(find_python)
  echo "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi

stamp=.venv/.lenna-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "installing lenna_core with its book, test and cluster dependencies into .venv" \
       "(a few minutes)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[book,test,cluster]"
  echo "$wanted" > "$stamp"
fi

install -D -m 644 scripts/jupyterlab/overrides.json .venv/share/jupyter/lab/settings/overrides.json
install -D -m 644 scripts/jupyterlab/jupyter_lab_config.json .venv/etc/jupyter/jupyter_lab_config.json
