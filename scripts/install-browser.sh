#!/usr/bin/env bash
# Install the headless browser the JupyterLab browser tests drive (tests/browser/).
# Idempotent: does nothing when /usr/bin/chromium is already there. Run as root (CI does).
# Playwright's own `playwright install` cannot download here; the tests point Playwright at
# Debian's Chromium instead.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-browser.sh: /usr/bin/chromium is missing; run this script as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # chromium brings its own libraries; the fonts make text (and emoji) render in screenshots.
    apt-get install -y --no-install-recommends \
        chromium fonts-liberation fonts-dejavu-core fonts-noto-color-emoji ca-certificates
fi

/usr/bin/chromium --version
