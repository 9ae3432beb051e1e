"""Where our processor's time goes per step on the GPU (8B shape, random bf16 weights, kimi_k2):
each part timed with a CUDA sync on both sides, at batch 1 and 64; then the same with a pinned
bitmask (an asynchronous copy)."""
import collections, json, os, statistics, sys, time
import torch
import xgrammar as xgr
import constrained.decoding as dec
import constrained.masks as masks
import constrained.processor as procmod
from constrained import ToolCallLogitsProcessor, dialect as registry
from constrained.benchmarks.common import Case, Force, ModelSource, case_prompt, encode_batch
from constrained.benchmarks.speed import LONG_TOOL, long_arguments

CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
sync = torch.cuda.synchronize if CUDA else (lambda: None)
T = collections.defaultdict(list)
def timed(name, fn):
    def wrap(*a, **k):
        sync(); t0 = time.perf_counter()
        r = fn(*a, **k)
        sync(); T[name].append(time.perf_counter() - t0)
        return r
    return wrap
src = ModelSource("random:llama-8b" if CUDA else "random:tiny", DEV)
d = registry.get("kimi_k2")
model, tok = src.load(d.name)
case = Case(0, [LONG_TOOL], [("record_items", long_arguments(3))], 0)
ref = tok.encode(d.render_calls(case.openai_calls(), 0), add_special_tokens=False) + [tok.eos_token_id]
prompt = case_prompt(tok, d, case)
orig = dict(accept=procmod.accept_all, fill=dec.GrammarBatch.fill, apply=dec.GrammarBatch.apply, kernel=xgr.apply_token_bitmask_inplace,
            call=ToolCallLogitsProcessor.__call__)
procmod.accept_all = timed("accept_all (tolist + accept)", orig["accept"])
dec.GrammarBatch.fill = timed("fill", orig["fill"])
dec.GrammarBatch.apply = timed("apply (copy + kernel + budget)", orig["apply"])
masks.xgr.apply_token_bitmask_inplace = timed("kernel (xgrammar triton)", orig["kernel"])
ToolCallLogitsProcessor.__call__ = timed("whole processor", orig["call"])
out = {}
for pinned in ((False, True) if CUDA else (False,)):
    for B in (1, 64):
        enc = encode_batch(tok, [prompt] * B, DEV)
        plen = enc["input_ids"].shape[1]
        for rep in range(3):
            T.clear()
            proc = ToolCallLogitsProcessor(tok, d, [LONG_TOOL], "auto", vocab_size=model.config.vocab_size, max_new_tokens=1024)  # a far budget, as the bench
            if pinned:
                proc.batch.bitmask = proc.batch.bitmask.pin_memory() if proc.batch.bitmask.shape[0] >= B else xgr.allocate_token_bitmask(B, model.config.vocab_size).pin_memory()
                proc.batch._ensure = lambda rows: None
            with torch.no_grad():
                model.generate(**enc, logits_processor=[Force(plen, [ref] * B), proc], do_sample=False, max_new_tokens=len(ref), min_new_tokens=0,
                               pad_token_id=tok.pad_token_id)
        key = f"batch{B}{' pinned' if pinned else ''}"
        out[key] = {k: round(1e6 * statistics.median(v), 1) for k, v in T.items()}
        print(key, out[key], flush=True)
# the kernel alone on a hot GPU vs in the loop; a torch-native unpack for comparison
for B in (1, 64):
    logits = torch.randn(B, model.config.vocab_size, device=DEV)
    bm = torch.full((B, (model.config.vocab_size + 31) // 32), -1, dtype=torch.int32)
    bm_dev = bm.to(DEV)
    for name, f in {"kernel only (hot loop)": lambda: orig["kernel"](logits, bm_dev),
                    "copy pageable + kernel": lambda: orig["kernel"](logits, bm.to(DEV, non_blocking=True))}.items():
        for _ in range(20): f()
        sync(); ts = []
        for _ in range(200):
            t0 = time.perf_counter(); f(); sync(); ts.append(time.perf_counter() - t0)
        print(f"batch{B} {name}: {1e6 * statistics.median(ts):.1f} us", flush=True)
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "gpu", "profile.json"), "w"), indent=1)
