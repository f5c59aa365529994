#!/usr/bin/env bash
# Makes sure a headless Chromium and its chromedriver are available for the
# dashboard's browser test (inferix-http/tests/dashboard.rs).
#
# Installs Debian's `chromium` and `chromium-driver` packages; skipped when
# both /usr/bin/chromium and /usr/bin/chromedriver answer `--version`.
# Idempotent: safe to run many times. `apt-get update` runs only when
# something has to be installed.
set -euo pipefail

works() {
    "$1" --version >/dev/null 2>&1
}

if works /usr/bin/chromium && works /usr/bin/chromedriver; then
    echo "setup-browser: $(/usr/bin/chromium --version 2>/dev/null | head -n1) and chromedriver already installed"
    exit 0
fi

source "$(dirname "$0")/apt-install.sh"
start=$(date +%s)
# Chromium's recommended packages include the fonts pages are drawn with.
apt_install setup-browser --with-recommends chromium chromium-driver
for bin in /usr/bin/chromium /usr/bin/chromedriver; do
    if ! works "$bin"; then
        echo "setup-browser: installed, but '$bin --version' fails" >&2
        "$bin" --version >&2 || true
        exit 1
    fi
done
echo "setup-browser: installed $(/usr/bin/chromium --version 2>/dev/null | head -n1) in $(( $(date +%s) - start )) s"
