"""`constrained bench`: constrained vs free decoding side by side.

    constrained bench                 # quick (default): < 10 min on 2 CPU cores with the demo model
    constrained bench --full          # more prompts, repetitions, batch 16, 300 tools
    constrained bench --gpu           # a GPU: 8B Llama shape, random bf16 weights, batch 1 and 64
    constrained bench --model PATH --device cuda --dialects hermes

Writes `bench_cpu.*` or `bench_gpu.*` (JSON, markdown tables, PNG plots) under `--out`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from .config import PRESETS, RANDOM_PREFIX, BenchConfig, make_config

PARTS = ("trained", "validity", "mask", "generate", "json_args", "ttft", "compile", "server", "jump")


def add_bench_command(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmark constrained vs free decoding (validity, mask, speed, compile, server)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="preset", action="store_const", const="quick", help="the default: minutes on a small CPU")
    size.add_argument("--full", dest="preset", action="store_const", const="full", help="more prompts and repetitions")
    size.add_argument("--gpu", dest="preset", action="store_const", const="gpu",
                      help="on a GPU: an 8B Llama shape with random bf16 weights, batch 1 and 64, kimi_k2 and hermes (options below override)")
    size.add_argument("--preset", choices=sorted(PRESETS), help=argparse.SUPPRESS)  # tiny: the smoke test
    p.add_argument("--model", help="a local Hugging Face checkpoint, or random:SHAPE (a real model's shape with random weights: "
                   "random:llama-1b, random:llama-8b); default: the demo model of each dialect")
    p.add_argument("--device", help="cpu (default) or cuda[:N]")
    p.add_argument("--dialects", nargs="+", metavar="NAME", help="default: every registered dialect (`constrained dialects` lists them)")
    p.add_argument("--parts", nargs="+", choices=PARTS, help="default: all parts of the preset")
    p.add_argument("--engines", nargs="+", choices=BenchConfig().engines, help="default: all available")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads (default: 1 on CPU, torch's default on GPU)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--engine", choices=("transformers", "vllm"), default="transformers",
                   help="vllm: the plug-in inside vLLM's CPU build, side by side with vLLM free and vLLM's own parsers (benchmarks/vllm_engine.py)")
    p.add_argument("--vllm-python", help="--engine vllm: the interpreter of an environment with vLLM and this project (default: .venv-vllm)")
    p.set_defaults(func=_handler, preset=None)


def _handler(args: argparse.Namespace) -> int:
    if args.engine == "vllm":
        return _vllm(args)
    cfg = make_config(args.preset or "quick", dialects=args.dialects, device=args.device, model=args.model, out=args.out,
                      seed=args.seed, parts=args.parts, engines=args.engines,
                      torch_threads=args.torch_threads)
    if args.no_plots:
        cfg.plots = False
    if cfg.model and not cfg.model.startswith(RANDOM_PREFIX) and not cfg.dialects:
        print("constrained bench: with --model, name the model's dialect with --dialects", file=sys.stderr)
        return 2
    res = run(cfg)
    paths = res.pop("_paths")
    print(f"wrote {paths['json']}\n      {paths['md']}" + "".join(f"\n      {p}" for p in paths["plots"]))
    missed = [t for t in res["targets"] if t["met"] is False]
    print(f"targets: {sum(t['met'] is True for t in res['targets'])} met, {len(missed)} missed (see {paths['md']})")
    broken = [t for t in res["targets"] if t["target"].startswith("all constrained outputs") and t["met"] is False]
    return 1 if broken else 0


def _vllm(args: argparse.Namespace) -> int:
    from . import vllm_engine

    cfg = vllm_engine.VLLMBenchConfig(**vllm_engine.PRESETS[args.preset or "quick"])
    cfg.out, cfg.vllm_python, cfg.seed = args.out, args.vllm_python, args.seed
    if args.dialects:
        cfg.dialects = tuple(args.dialects)
    res = vllm_engine.run(cfg)
    print("wrote " + "\n      ".join(res["_paths"]))
    return 0


def run(cfg: BenchConfig, progress: bool = True) -> dict:
    """Run the configured parts and write the report; returns the results (with `_paths`)."""
    import torch
    from tqdm.auto import tqdm

    from constrained import dialect as registry

    from . import report, speed, trained, validity
    from .common import ModelSource, machine_info

    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("constrained bench: --device cuda but torch sees no GPU")
    t_start = time.perf_counter()
    threads_before = torch.get_num_threads()
    threads = cfg.torch_threads or (1 if cfg.device == "cpu" else 0)
    if threads:
        torch.set_num_threads(threads)
    source = ModelSource(cfg.model, cfg.device)
    dialects = [registry.get(d) for d in cfg.dialects] if cfg.dialects else registry.all_dialects()
    parts = set(cfg.parts)
    res: dict[str, Any] = {"machine": machine_info(cfg.device), "config": cfg.to_json()}

    total = 0
    if "trained" in parts:
        total += len(dialects) * cfg.trained_dialogues
    if "validity" in parts:
        total += sum(validity.units(d, cfg) for d in dialects)
    if "mask" in parts:
        total += len(dialects)
    if "generate" in parts:
        total += len(dialects) * len(cfg.gen_batches) * (cfg.gen_reps + 1)
    if "json_args" in parts:
        total += len(cfg.gen_batches) * (cfg.gen_reps + 1)
    if "ttft" in parts:
        total += len(dialects) * (cfg.ttft_reps + 1)
    if "compile" in parts:
        total += len(dialects) * len(cfg.compile_sizes) * cfg.compile_reps
    if "server" in parts:
        total += len(cfg.server_concurrency)
    if "jump" in parts:
        total += len(dialects) * (cfg.jump_reps + 1)
    bar = tqdm(total=total, desc="bench", unit="step", disable=not progress, dynamic_ncols=True)
    tick = lambda: bar.update(1)  # noqa: E731

    walks: dict[str, list] = {}

    def do_validity():
        res["validity"] = {}
        for d in dialects:
            bar.set_description(f"validity {d.name}")
            model_part = validity.run_model(source, d, cfg, tick)
            walks[d.name] = model_part.pop("_walks")
            res["validity"][d.name] = {"model": model_part, "drift": validity.run_drift(source, d, cfg, tick)}

    def do_mask():
        res["mask_fill"], masks = {}, []
        for d in dialects:
            bar.set_description(f"mask fill {d.name}")
            m = speed.mask_fill(source, d, cfg, walks.get(d.name, ()))
            masks += m.pop("_masks")
            res["mask_fill"][d.name] = m
            tick()
        bar.set_description("mask apply")
        model, _ = source.load(dialects[0].name)
        res["mask_apply"] = speed.mask_apply(masks, int(model.config.vocab_size), cfg, cfg.device)

    def per_dialect(key: str, label: str, fn):
        def go():
            res[key] = {}
            for d in dialects:
                bar.set_description(f"{label} {d.name}")
                res[key][d.name] = fn(source, d, cfg, tick)
        return go

    def do_json_args():
        bar.set_description("JSON args engines")
        res["json_args"] = speed.json_args_ratio(source, dialects[0].name, cfg, tick)

    def do_server():
        bar.set_description("server")
        res["server"] = speed.server_throughput(source, dialects[0], cfg, tick)

    def do_trained():
        if source.path is not None:
            res["trained"] = {"status": "skipped", "reason": "--model: the trained demo model's part runs on the demo only"}
            return
        res["trained"] = {}
        for d in dialects:
            bar.set_description(f"trained model {d.name}")
            res["trained"][d.name] = trained.run(d, cfg.trained_dialogues, cfg.trained_max_tokens, tick)

    steps = {
        "trained": do_trained,
        "validity": do_validity,
        "mask": do_mask,
        "generate": per_dialect("generate", "time/token", speed.generate_ratio),
        "json_args": do_json_args,
        "ttft": per_dialect("ttft", "TTFT", speed.ttft),
        "compile": per_dialect("compile", "compile", speed.compile_scaling),
        "server": do_server,
        "jump": per_dialect("jump", "jump-forward", speed.jump_forward),
    }
    res["part_seconds"] = {}
    try:
        for name, step in steps.items():
            if name in parts:
                t0 = time.perf_counter()
                step()
                res["part_seconds"][name] = round(time.perf_counter() - t0, 1)
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
    res["duration_s"] = time.perf_counter() - t_start
    try:
        res["machine"]["load_avg_1m_at_end"] = os.getloadavg()[0]
    except OSError:
        pass
    res["_paths"] = report.write(res, cfg.out, cfg.plots)
    return res
