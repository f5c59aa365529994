#!/usr/bin/env bash
# Makes sure a Vulkan device exists for the cubecl wgpu runtime.
#
# On machines with a real GPU driver (NVIDIA, AMD, Intel) nothing is done.
# Without any Vulkan ICD, Mesa's software rasteriser lavapipe is installed
# (Debian/Ubuntu `mesa-vulkan-drivers` + the `libvulkan1` loader), which lets
# the path tracer run on the CPU. Idempotent: safe to run many times.
set -euo pipefail

icd_dirs=(/usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d)

have_icd() {
    local d
    for d in "${icd_dirs[@]}"; do
        if compgen -G "$d/*.json" >/dev/null 2>&1; then
            return 0
        fi
    done
    [[ -n "${VK_ICD_FILENAMES:-}" || -n "${VK_DRIVER_FILES:-}" ]]
}

have_loader() {
    ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'
}

if have_icd && have_loader; then
    echo "setup-gpu: Vulkan ICD and loader present; nothing to do"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-gpu: no Vulkan driver found and apt-get is unavailable;" >&2
    echo "  install Mesa's lavapipe (mesa-vulkan-drivers) and the Vulkan loader (libvulkan1) by hand" >&2
    exit 1
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup-gpu: must run as root (or with sudo) to install mesa-vulkan-drivers" >&2
        exit 1
    fi
fi

if dpkg-query -W -f='${Status}' mesa-vulkan-drivers 2>/dev/null | grep -q 'install ok installed' \
    && dpkg-query -W -f='${Status}' libvulkan1 2>/dev/null | grep -q 'install ok installed'; then
    echo "setup-gpu: mesa-vulkan-drivers and libvulkan1 already installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y -o DPkg::Lock::Timeout=300 --no-install-recommends mesa-vulkan-drivers libvulkan1
echo "setup-gpu: installed lavapipe (mesa-vulkan-drivers) and libvulkan1"
