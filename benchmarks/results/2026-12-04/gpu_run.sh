#!/bin/bash
# The GPU bench on the device machine: the lock's wheels (cp312) into /tmp/site, the source laid
# out as the installed package (grammars/, server/, benchmarks/ under constrained/), then
# `constrained bench --gpu`; everything under $OUT comes back.
set -u
export PYTHONUNBUFFERED=1
ROOT=$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/src && cp -r constrained /tmp/src/ && cp -r grammars server benchmarks /tmp/src/constrained/ && mkdir -p /tmp/src/constrained/tests && cp tests/corpus.py /tmp/src/constrained/tests/
export PYTHONPATH=/tmp/src:/tmp/site
cd /tmp/src
python3 -c "import torch, xgrammar, transformers, constrained; print('torch', torch.__version__, 'xgrammar', __import__('importlib.metadata').metadata.version('xgrammar'), 'transformers', transformers.__version__, torch.cuda.get_device_name(0))" || exit 1
mkdir -p $OUT/gpu
python3 -m constrained.cli bench --gpu --out $OUT/gpu "$@" 2>&1 | tr '\r' '\n' | grep -v "^\s*$" | awk 'NR%1==0' > $OUT/gpu/log.txt
tail -60 $OUT/gpu/log.txt
