"""Variants for the per-step cost on the GPU machine: xgrammar's batched fill by thread count, and
the bitmask application by backend, with the GPU idle between calls (as in HF generate)."""
import statistics, time, os
import torch
import xgrammar as xgr
from constrained import dialect as registry, demo
from constrained.compiler import grammar_cache, eos_token_ids
from constrained.grammar import GrammarOptions
from constrained.benchmarks.common import Case
from constrained.benchmarks.speed import LONG_TOOL, long_arguments

CUDA = torch.cuda.is_available(); DEV = "cuda" if CUDA else "cpu"
sync = torch.cuda.synchronize if CUDA else (lambda: None)
d = registry.get("kimi_k2")
tok = demo.load_tokenizer(d.name, demo.all_markers())
V = len(tok)
cache = grammar_cache(tok, V)
compiled = cache.compile(d, [LONG_TOOL], GrammarOptions("auto")).grammar
case = Case(0, [LONG_TOOL], [("record_items", long_arguments(3))], 0)
ref = tok.encode(d.render_calls(case.openai_calls(), 0), add_special_tokens=False)
print("cores", os.cpu_count(), "ref", len(ref), flush=True)
for rows in (16, 64):
    ms = []
    for i in range(rows):
        m = xgr.GrammarMatcher(compiled, override_stop_tokens=eos_token_ids(tok))
        for t in ref[: (i * 7) % len(ref)]:
            assert m.accept_token(t)
        ms.append(m)
    bm = xgr.allocate_token_bitmask(rows, V)
    res = {}
    for threads in (1, 2, 4, 8, 16, "auto"):
        bat = xgr.BatchGrammarMatcher(max_threads=threads)
        for _ in range(5): bat.batch_fill_next_token_bitmask(ms, bm)
        ts = []
        for _ in range(100):
            t0 = time.perf_counter(); bat.batch_fill_next_token_bitmask(ms, bm); ts.append(time.perf_counter() - t0)
            time.sleep(0.002)
        res[threads] = round(1e6 * statistics.median(ts), 1)
    ts = []
    for _ in range(100):
        t0 = time.perf_counter()
        for i, m in enumerate(ms): m.fill_next_token_bitmask(bm, i)
        ts.append(time.perf_counter() - t0); time.sleep(0.002)
    res["python loop"] = round(1e6 * statistics.median(ts), 1)
    print(f"fill {rows} rows, us by max_threads:", res, flush=True)

def unpack_apply(logits, bm_dev, shifts=torch.arange(32, dtype=torch.int32, device=DEV)):
    bits = (bm_dev.unsqueeze(-1) >> shifts) & 1
    logits.masked_fill_(bits.view(bm_dev.shape[0], -1)[:, : logits.shape[1]] == 0, float("-inf"))

for B in (1, 64):
    logits = torch.randn(B, V, device=DEV)
    bm = torch.zeros((B, (V + 31) // 32), dtype=torch.int32); bm[:, 3] = 5
    variants = {f"xgrammar {b}": (lambda b=b: xgr.apply_token_bitmask_inplace(logits, bm.to(DEV, non_blocking=True), backend=b))
                for b in (("triton", "torch_native", "cuda") if CUDA else ("cpu", "torch_native"))}
    variants = {"torch unpack + masked_fill": lambda: unpack_apply(logits, bm.to(DEV, non_blocking=True)), **variants}
    for name, f in variants.items():
        try:
            for _ in range(5): f()
            sync(); ts = []; cpu = []
            for _ in range(60):
                time.sleep(0.02)  # the GPU idles, as between HF generate's kernels
                t0 = time.perf_counter(); f(); t1 = time.perf_counter(); sync(); ts.append(time.perf_counter() - t0); cpu.append(t1 - t0)
            print(f"apply batch{B} {name}: {1e6 * statistics.median(ts):.1f} us synced, {1e6 * statistics.median(cpu):.1f} us on the CPU", flush=True)
        except Exception as e:
            print(f"apply batch{B} {name}: failed {type(e).__name__}: {str(e)[:200]}", flush=True)
