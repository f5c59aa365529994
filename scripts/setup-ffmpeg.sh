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

source "$(dirname "$0")/apt-install.sh"
apt_install setup-ffmpeg ffmpeg
echo "setup-ffmpeg: installed ffmpeg"
