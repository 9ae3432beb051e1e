"""What `constrained bench` measures, and its presets (kept free of heavy imports: the CLI's help
reads them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

RANDOM_PREFIX = "random:"  # --model random:<shape>: a real model's shape, random weights (demo.MODEL_SHAPES)


# -- configuration -------------------------------------------------------------------------------
@dataclass
class BenchConfig:
    preset: str = "quick"
    dialects: tuple = ()  # () : every registered dialect
    device: str = "cpu"  # or cuda[:N]
    model: str | None = None  # a local checkpoint; None: the demo model
    # torch intra-op threads; 0: 1 on CPU (the demo model is tiny: with 2 threads on a busy 2-core
    # machine each op waits for the other core, 5-10x slower), torch's default on GPU
    torch_threads: int = 0
    out: str = "benchmarks/results"
    seed: int = 0
    # validity
    bfcl_tools: int = 16  # BFCL schemas (with ground truth) added to the 32-tool corpus
    demo_prompts: int = 16  # random demo model: prompts per dialect
    demo_max_tokens: int = 96
    drift_prompts: int = 0  # 0: every corpus tool (+ BFCL sample) once
    drift_rate: float = 0.3  # probability that the drift model attempts each kind of error
    drift_batch: int = 16
    # the trained demo model (benchmarks/trained.py): held-out dialogues per dialect
    trained_dialogues: int = 24
    trained_max_tokens: int = 48  # beyond the reference answer's own length
    # speed
    mask_walks: int = 0  # reference outputs walked per dialect for mask timing (0: all)
    apply_reps: int = 200
    gen_batches: tuple = (1, 8)
    gen_items: int = 3  # length of the forced long call (items in its array)
    gen_reps: int = 5  # interleaved repetitions (plus one warm-up)
    ttft_reps: int = 5
    compile_sizes: tuple = (1, 10, 100)
    compile_reps: int = 3
    server_concurrency: tuple = (1, 4, 16)
    server_requests: int = 16
    jump_reps: int = 8  # jump-forward: interleaved rounds of one request per arm (plus one warm-up)
    jump_timings: int = 2  # jump-forward: each timed request this many times, its fastest kept (greedy: the same output)
    jump_max_tokens: int = 256  # beyond the reference answer's own length: a budget far away, as most requests have
    engines: tuple = ("free", "ours", "ours_no_budget", "xgrammar_hf", "llguidance", "outlines")
    parts: tuple = ("trained", "validity", "mask", "generate", "json_args", "ttft", "compile", "server", "jump")
    plots: bool = True

    def to_json(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    "tiny": dict(bfcl_tools=2, demo_prompts=4, demo_max_tokens=96, drift_prompts=6, drift_batch=6, mask_walks=4, apply_reps=20,
                 gen_batches=(1,), gen_items=1, gen_reps=1, ttft_reps=1, compile_sizes=(1, 10), compile_reps=1,
                 server_concurrency=(1, 4), server_requests=4, jump_reps=2, engines=("free", "ours", "ours_no_budget", "xgrammar_hf"),
                 trained_dialogues=4, parts=("trained", "validity", "mask", "generate", "ttft", "compile"), plots=True),
    "quick": {},
    # a GPU: an 8B Llama shape with random bf16 weights at batch 1 and 64 (docs/targets.md's GPU
    # targets), the grammar's masks applied on the GPU; the test corpus' tools only (no maskbench)
    "gpu": dict(device="cuda", model="random:llama-8b", dialects=("kimi_k2", "hermes"), bfcl_tools=0, mask_walks=16, apply_reps=200,
                gen_batches=(1, 64), gen_items=3, gen_reps=3, ttft_reps=3, engines=("free", "ours", "ours_no_budget", "xgrammar_hf"),
                parts=("mask", "generate", "ttft")),
    "full": dict(bfcl_tools=64, demo_prompts=48, demo_max_tokens=128, drift_rate=0.3, apply_reps=1000, gen_batches=(1, 8, 16),
                 gen_items=8, gen_reps=15, ttft_reps=15, compile_sizes=(1, 10, 100, 300), compile_reps=5,
                 server_concurrency=(1, 4, 16), server_requests=48, jump_reps=24, trained_dialogues=64),
}


def make_config(preset: str = "quick", **overrides) -> BenchConfig:
    cfg = BenchConfig(preset=preset, **PRESETS[preset])
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, tuple(v) if isinstance(v, list) else v)
    return cfg
