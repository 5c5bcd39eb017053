#!/usr/bin/env bash
# The Debian packages rnnkit's test suite needs beyond Python: chromium, the real browser that
# tests diagnose's explorer.html (tests/test_explorer_browser.py). Installs only what is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
/usr/bin/chromium --version
