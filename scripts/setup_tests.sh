#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine: the Python requirements and, for the
# real-browser tests, Debian's Chromium (Playwright drives it; it never downloads a browser).
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
