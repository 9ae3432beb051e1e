"""Train the built-in demo model (constrained/demo_model/) on synthetic tool-use dialogues.

    .venv/bin/python scripts/train_demo.py            # the committed weights: prints their sha256
    .venv/bin/python scripts/train_demo.py --check    # train again into a temporary folder, compare hashes

Fixed seed, one thread, deterministic algorithms, and one instruction set on every x86 machine
(`PINNED`), so that a run gives the same weights on any host (checked on one AMD host so far).
See constrained/demo_training.py for what the model is and how it learns.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

# Before torch loads. ATen's kernels (AVX-512 or AVX2) and MKL's (its Intel or AMD path) sum in
# different orders on different CPUs, and after three steps the weights differ already: pinned to
# AVX2, which every x86 server of the last decade has, so that runs on any of them agree.
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
os.environ.update(PINNED)

from constrained import demo  # noqa: E402
from constrained import demo_training as training  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=demo.TRAINED_DIR)
    p.add_argument("--check", action="store_true", help="train into a temporary folder and compare with the committed weights' hash")
    for f in fields(training.TrainingConfig):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = p.parse_args()
    import torch

    if torch.backends.cpu.get_cpu_capability() != "AVX2":
        p.error(f"torch runs {torch.backends.cpu.get_cpu_capability()} kernels, not the pinned AVX2 (set before torch was imported?)")
    config = training.TrainingConfig(**{f.name: getattr(args, f.name) for f in fields(training.TrainingConfig)})
    markers = demo.all_markers()
    tok = demo.marker_tokenizer(markers, demo.DEMO_MODEL_NAME)
    out = Path(tempfile.mkdtemp()) if args.check else args.out
    start = time.perf_counter()
    model = training.train(tok, config)
    digest = training.save(model, tok, config, markers, out)
    print(f"trained in {time.perf_counter() - start:.0f} s; weights {out / 'model.safetensors'} sha256 {digest}")
    if args.check:
        committed = training.weights_hash(demo.TRAINED_DIR)
        shutil.rmtree(out)
        print("same as the committed weights" if digest == committed else f"DIFFERENT from the committed weights ({committed})")
        return 0 if digest == committed else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
