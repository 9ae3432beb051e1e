#!/usr/bin/env bash
# Set up a virtual environment with everything the project needs, from scratch, at the versions of
# the lock (constraints.txt, see scripts/lock.py). Idempotent.
#   VENV=path   the environment to make or update (default .venv)
#   LOCK=file   the constraints file (default constraints.txt; scripts/upgrade-lock.sh passes a candidate)
# torch is installed first and pinned to the CPU wheel: a package asking for a newer torch would
# otherwise pull several GB of CUDA wheels. GPU users: install your CUDA build of torch first; the
# script keeps whatever torch is there and locks the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
LOCK=$(realpath "${LOCK:-constraints.txt}")
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --quiet --disable-pip-version-check)
# pip's location warnings about this machine's optional local indexes are noise
quiet() { "$@" 2> >(grep -v "^WARNING: Location '" >&2); }
quiet "${PIP[@]}" install -c "$LOCK" pip setuptools wheel
constraints="$LOCK"
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  have=$("$VENV/bin/python" -c "import torch; print(torch.__version__.split('+')[0])")
  if ! grep -qx "torch==$have" "$LOCK"; then
    # a torch the user brought (CUDA build): keep it, lock everything else
    constraints="$VENV/constraints-without-torch.txt"
    grep -v -E "^(torch|triton)==" "$LOCK" > "$constraints"
    echo "keeping the installed torch $have (the lock has $(grep '^torch==' "$LOCK"))" >&2
  fi
else
  quiet "${PIP[@]}" install -c "$LOCK" torch
fi
# --no-build-isolation: the build uses the locked setuptools, not whatever is newest today
# (setuptools warns that any editable install may be shadowed by folders of the same name: noise here)
PYTHONWARNINGS="ignore:Editable installation" quiet "${PIP[@]}" install -c "$constraints" --no-build-isolation -e ".[test,bench,dev]"
"$VENV/bin/python" -c "import importlib.metadata as m, constrained; print('constrained ready:', ', '.join(f'{p} {m.version(p)}' for p in ('torch', 'xgrammar', 'transformers')))"
