"""Where `constrained.masks.apply_bitmask_` spends its time inside `generate` (demo model, kimi_k2,
CPU): an instrumented copy of that function as of commit 3214855 (a timer between its steps),
patched in for the run. A measurement, not code the package uses: `cpu_processor_parts.txt` has its
output (`python cpu_apply_parts.py BATCH`)."""
import collections, statistics, time, sys
import numpy as np, torch
import constrained.masks as M
import constrained.decoding as dec
from constrained import ToolCallLogitsProcessor, dialect as registry
from constrained.benchmarks.common import Case, Force, ModelSource, case_prompt, encode_batch
from constrained.benchmarks.speed import LONG_TOOL, long_arguments
torch.set_num_threads(1)
T = collections.defaultdict(list)
pc = time.perf_counter
def apply(scores, bitmask, rows=None):
    t0 = pc()
    scores = M.forbid_past_bitmask(scores, bitmask, rows); t1 = pc(); T["forbid_past"].append(t1-t0)
    vocab = scores.shape[-1]; words = (vocab + 31) // 32
    row_ids = list(range(scores.shape[0])) if rows is None else list(rows)
    packed = bitmask.numpy()[row_ids, :words]; ta = pc(); T["p.index"].append(ta-t1)
    view = scores.numpy(); tb = pc(); T["p.view"].append(tb-ta)
    if vocab % 32:
        packed[:, words - 1] |= np.int32(-1 << (vocab % 32))
    tc = pc(); T["p.or"].append(tc-tb)
    partial = (packed != -1).any(axis=1); td = pc(); T["p.partial"].append(td-tc)
    allowed_words = np.count_nonzero(packed, axis=1); t2 = pc(); T["prep"].append(t2-t1); T["p.count"].append(t2-td)
    dense_rows = []
    for k, r in enumerate(row_ids):
        if not partial[k]: continue
        if allowed_words[k] <= M.SCATTER_WORDS:
            M._keep_allowed(view[r], packed[k], vocab)
        else:
            dense_rows.append(k)
    t3 = pc(); T["keep loop"].append(t3-t2)
    if dense_rows:
        forbidden = (vocab - M._allowed_tokens(packed[dense_rows])).tolist()
        kernel = [k for k, f in zip(dense_rows, forbidden) if f <= vocab // 2]
        dense_rows = [k for k, f in zip(dense_rows, forbidden) if f > vocab // 2]
        if kernel:
            targets = [row_ids[k] for k in kernel]
            rows_mask = np.full((scores.shape[0], words), -1, dtype=np.int32)
            rows_mask[targets] = packed[kernel]
            M.xgr.apply_token_bitmask_inplace(scores, torch.from_numpy(rows_mask), vocab_size=vocab, indices=targets)
        t4 = pc(); T["kernel"].append(t4-t3)
        if dense_rows:
            targets = [row_ids[k] for k in dense_rows]
            penalty = M._PENALTY[packed[dense_rows].view(np.uint8)].reshape(len(dense_rows), -1)[:, :vocab]
            view[targets] += penalty
            T["penalty"].append(pc()-t4); T["penalty rows"].append(len(dense_rows))
    T["total"].append(pc()-t0)
dec.apply_bitmask_ = apply
d = registry.get("kimi_k2")
model, tok = ModelSource(None, "cpu").load(d.name)
case = Case(0, [LONG_TOOL], [("record_items", long_arguments(3))], 0)
ref = tok.encode(d.render_calls(case.openai_calls(), 0), add_special_tokens=False) + [tok.eos_token_id]
prompt = case_prompt(tok, d, case)
B = int(sys.argv[1])
enc = encode_batch(tok, [prompt] * B, "cpu"); plen = enc["input_ids"].shape[1]
for rep in range(3):
    T.clear()
    proc = ToolCallLogitsProcessor(tok, d, [LONG_TOOL], "auto", vocab_size=model.config.vocab_size, max_new_tokens=1024)
    with torch.no_grad():
        model.generate(**enc, logits_processor=[Force(plen, [ref] * B), proc], do_sample=False, max_new_tokens=len(ref), min_new_tokens=0, pad_token_id=tok.pad_token_id)
for k, v in T.items():
    print(k, "n", len(v), "median", round(1e6*statistics.median(v),1) if "rows" not in k else statistics.median(v), "sum ms", round(1e3*sum(v),2) if "rows" not in k else sum(v))
print("model vocab", model.config.vocab_size, "tok", len(tok))
