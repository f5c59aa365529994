#!/usr/bin/env bash
# Builds the `inferix` Python package into a virtual environment under
# target/pyenv (idempotently) and runs its tests and the pipeline example.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python with venv and pip (Debian splits them out).
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  apt-get update
  apt-get install -y -o DPkg::Lock::Timeout=300 --no-install-recommends \
    python3 python3-venv python3-pip
fi

VENV=target/pyenv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# maturin (the build backend) runs from the environment's bin folder.
export PATH="$PWD/$VENV/bin:$PATH"
"$PY" -m pip install --quiet --disable-pip-version-check \
  'maturin>=1.9.4,<2' 'pytest>=7' 'pillow>=9' 'numpy>=1.21' 'mypy>=1.18'

# The multi-process tests start the `inferix` binary of this tree.
cargo build --locked -p inferix-cli --bin inferix
export INFERIX_BIN="$PWD/target/debug/inferix"

# The package, built by maturin in the workspace's target dir (dev profile).
"$PY" -m pip install --quiet --disable-pip-version-check \
  --no-build-isolation --force-reinstall --no-deps ./bindings/python

export RUST_BACKTRACE=0
"$PY" -m pytest -p no:cacheprovider bindings/python/tests -q

# The Blender add-on's HTTP client, with no Blender (integrations/blender).
"$PY" -m unittest discover -s integrations/blender/tests
