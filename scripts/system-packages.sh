#!/usr/bin/env bash
# The Debian packages rnnkit needs beyond Python, installed only when missing:
#   chromium    the real browser that tests diagnose's explorer.html (tests/test_explorer_browser.py)
#   espeak-ng   speech synthesis for examples/spoken_digits.py's spoken data and its transcribe tests
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/espeak-ng ] || missing+=(espeak-ng)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for package in "${missing[@]}"; do
    "/usr/bin/$package" --version | head -1
done
