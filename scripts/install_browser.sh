#!/usr/bin/env bash
# Headless Chromium + its WebDriver for the MLflow UI test (tests/test_mlflow_ui.py).
# Idempotent: does nothing when both are on PATH. Debian/Ubuntu (apt-get); needs root or sudo.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
browser_ready() { (have chromium || have chromium-browser) && have chromedriver; }

if browser_ready; then
  exit 0
fi
if ! have apt-get; then
  echo "install_browser.sh: no apt-get here; install Chromium and chromedriver yourself" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install_browser.sh: apt-get needs root (no passwordless sudo)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian names them chromium / chromium-driver; Ubuntu's chromium is a snap stub, so try both.
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver \
  || $SUDO apt-get install -y -qq --no-install-recommends chromium-browser chromium-chromedriver
browser_ready
