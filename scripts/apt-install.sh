# Shared by the setup scripts (sourced, not run): installs Debian packages
# with apt-get, as root or through sudo, waiting for another apt's lock.
#
#   apt_install TOOL [--with-recommends] PACKAGE...
#
# TOOL names the calling script in messages; recommended packages are left
# out unless asked for. Fails with a message when
# apt-get is unavailable or the user can neither be root nor use sudo.

apt_install() {
    local tool="$1"
    shift
    local recommends="--no-install-recommends"
    if [[ "${1:-}" == "--with-recommends" ]]; then
        recommends=""
        shift
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$tool: apt-get is unavailable; install $* by hand" >&2
        return 1
    fi
    local sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "$tool: must run as root (or with sudo) to install $*" >&2
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -o DPkg::Lock::Timeout=300
    $sudo apt-get install -y -o DPkg::Lock::Timeout=300 $recommends "$@"
}
