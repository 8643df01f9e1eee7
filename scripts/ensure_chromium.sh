#!/usr/bin/env bash
# Install Debian's Chromium for the browser check if it is missing (needs apt and root, or
# sudo). Playwright drives this browser; it downloads none of its own.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
as_root=""
if [ "$(id -u)" != 0 ]; then
  as_root="sudo"
fi
echo "installing Debian's chromium for the browser check (a few minutes)"
$as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends chromium \
  >/dev/null
