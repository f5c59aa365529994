#!/usr/bin/env bash
# Makes sure the `ffmpeg` and `ffprobe` binaries exist: the manager makes
# the MP4, GIF and WebP outputs of finished jobs with ffmpeg, and the
# outputs' end-to-end tests read them back with ffprobe. Installs Debian's
# `ffmpeg` package when missing. Idempotent: safe to run many times.
set -euo pipefail

if ffmpeg -version >/dev/null 2>&1 && ffprobe -version >/dev/null 2>&1; then
    echo "setup-ffmpeg: ffmpeg present; nothing to do"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-ffmpeg: ffmpeg not found and apt-get is unavailable; install ffmpeg by hand" >&2
    exit 1
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup-ffmpeg: must run as root (or with sudo) to install ffmpeg" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -o DPkg::Lock::Timeout=300
$SUDO apt-get install -y -o DPkg::Lock::Timeout=300 --no-install-recommends ffmpeg
echo "setup-ffmpeg: installed ffmpeg"
