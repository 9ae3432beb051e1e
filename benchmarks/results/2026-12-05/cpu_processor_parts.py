"""Where our processor's time goes per step inside `generate` on CPU with the demo model (kimi_k2
by default), batch 1 and 16: each part timed by a wrapper, median per step, median of three runs
after a warm-up. Output: cpu_processor_parts.txt."""
import collections, statistics, time, sys
import torch
import constrained.decoding as dec
import constrained.masks as masks
import constrained.processor as procmod
import constrained.budget as budget
from constrained import ToolCallLogitsProcessor, dialect as registry
from constrained.benchmarks.common import Case, Force, ModelSource, case_prompt, encode_batch
from constrained.benchmarks.speed import LONG_TOOL, long_arguments
torch.set_num_threads(1)
T = collections.defaultdict(list)
def timed(name, fn):
    def wrap(*a, **k):
        t0 = time.perf_counter(); r = fn(*a, **k); T[name].append(time.perf_counter() - t0); return r
    return wrap
d = registry.get(sys.argv[1] if len(sys.argv) > 1 else "kimi_k2")
src = ModelSource(None, "cpu")
model, tok = src.load(d.name)
case = Case(0, [LONG_TOOL], [("record_items", long_arguments(3))], 0)
ref = tok.encode(d.render_calls(case.openai_calls(), 0), add_special_tokens=False) + [tok.eos_token_id]
prompt = case_prompt(tok, d, case)
procmod.accept_all = timed("accept_all", procmod.accept_all)
dec.GrammarBatch.fill = timed("fill", dec.GrammarBatch.fill)
dec.apply_bitmask_ = timed("apply_bitmask_", dec.apply_bitmask_)
dec.GrammarBatch.apply = timed("apply (bitmask + budget)", dec.GrammarBatch.apply)
budget.RowBudget.restrict = timed("budget.restrict", budget.RowBudget.restrict)
ToolCallLogitsProcessor.__call__ = timed("whole processor", ToolCallLogitsProcessor.__call__)
orig_fwd = model.forward
model.forward = timed("model forward", orig_fwd)
for B in (1, 16):
    enc = encode_batch(tok, [prompt] * B, "cpu")
    plen = enc["input_ids"].shape[1]
    res = []
    for rep in range(4):
        T.clear()
        proc = ToolCallLogitsProcessor(tok, d, [LONG_TOOL], "auto", vocab_size=model.config.vocab_size, max_new_tokens=1024)
        with torch.no_grad():
            model.generate(**enc, logits_processor=[Force(plen, [ref] * B), proc], do_sample=False, max_new_tokens=len(ref), min_new_tokens=0, pad_token_id=tok.pad_token_id)
        res.append({k: 1e6 * statistics.median(v) for k, v in T.items()})
    keys = res[0].keys()
    print(f"batch{B}", {k: round(statistics.median(r[k] for r in res[1:]), 1) for k in keys}, flush=True)
