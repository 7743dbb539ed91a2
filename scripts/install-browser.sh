#!/usr/bin/env bash
# Install the Debian packages the tests use beyond Python: the headless browser the JupyterLab browser
# tests drive (tests/browser/); the fonts that draw the style catalogue's names in every script (Tā moko,
# Đông Hồ, 浮世絵, मधुबनी, ...) in screenshots and in the kit's contact sheets (kit/sheet.py looks for
# Noto Sans); and ExifTool, which tests/test_xmp.py runs to read back the XMP every saved image carries,
# as other people's tools will.
# Idempotent and quick when all is there: installs only what is missing. Run as root (CI does).
# Playwright's own `playwright install` cannot download here; the tests point Playwright at
# Debian's Chromium instead.
set -euo pipefail

# chromium brings its own libraries; the fonts make text (and emoji) render in screenshots;
# libimage-exiftool-perl is ExifTool (the `exiftool` command).
packages=(chromium fonts-liberation fonts-dejavu-core fonts-noto-core fonts-noto-cjk
          fonts-noto-color-emoji ca-certificates libimage-exiftool-perl)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-browser.sh: missing ${missing[*]}; run this script as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
    apt-get clean  # the downloaded .deb files are not needed once installed
fi

/usr/bin/chromium --version
echo "exiftool $(exiftool -ver)"
