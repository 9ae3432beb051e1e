#!/usr/bin/env bash
# Set up .venv with everything the project needs, from scratch. Idempotent.
# torch is installed first and pinned to the CPU wheel: a package asking for a newer torch would
# otherwise pull several GB of CUDA wheels. GPU users: install your CUDA torch (>=2.3) first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test,bench]"
python -c "import importlib.metadata as m, constrained; print('constrained ready: torch', m.version('torch'), '| xgrammar', m.version('xgrammar'))"
