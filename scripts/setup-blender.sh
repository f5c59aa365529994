#!/usr/bin/env bash
# Makes sure a headless `blender` is available for the Blender renderer and
# its tests (inferix-gpu/tests/blender.rs).
#
# Installs Debian's `blender` package (3.4.x on Debian 12) without
# recommended packages, plus Mesa's EGL/GL drivers so that EEVEE and
# Workbench can render headless (surfaceless EGL on llvmpipe when there is no
# GPU), and bubblewrap, the sandbox strangers' scenes render in. Skipped when $BLENDER names a working executable, or when
# `blender --version` works and the Mesa drivers are present. Idempotent:
# safe to run many times.
set -euo pipefail

works() {
    "$1" --version >/dev/null 2>&1
}

if [[ -n "${BLENDER:-}" ]] && works "$BLENDER"; then
    echo "setup-blender: using \$BLENDER=$BLENDER ($("$BLENDER" --version 2>/dev/null | head -n1))"
    exit 0
fi
packages=(blender libegl-mesa0 libgl1-mesa-dri bubblewrap)
installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}
have_extras() {
    installed libegl-mesa0 && installed libgl1-mesa-dri && command -v bwrap >/dev/null 2>&1
}

if command -v blender >/dev/null 2>&1 && works blender && { ! command -v dpkg-query >/dev/null 2>&1 || have_extras; }; then
    echo "setup-blender: $(blender --version 2>/dev/null | head -n1) already installed"
    exit 0
fi

source "$(dirname "$0")/apt-install.sh"
start=$(date +%s)
apt_install setup-blender "${packages[@]}"
if ! works blender; then
    echo "setup-blender: blender was installed but 'blender --version' fails" >&2
    blender --version >&2 || true
    exit 1
fi
echo "setup-blender: installed $(blender --version 2>/dev/null | head -n1) in $(( $(date +%s) - start )) s"
