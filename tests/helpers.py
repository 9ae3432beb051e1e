"""Sampling from the random demo model under a grammar, for the tests."""

from __future__ import annotations

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from constrained import ToolCallLogitsProcessor
from constrained.chat import prepare_history, render_prompt
from constrained.grammars import get_dialect


class Nudge(LogitsProcessor):
    """Raise the logits of tokens that close structures (quotes, brackets, EOS, the call trigger).

    A uniformly random model almost never closes a string in a 129K vocabulary; the nudge makes it
    finish within a test's token budget. It runs BEFORE the grammar mask, so the grammar alone still
    decides what is allowed: the guarantee under test is unchanged.
    """

    STRINGS = ['"', "}", "]", ")", ",", "0", "1", "7", "true", "false", "null", "True", "False", "None", "\n", "x"]

    def __init__(self, tokenizer, dialect, bias: float = 9.0):
        d = get_dialect(dialect)
        ids = {tokenizer.eos_token_id}
        for s in self.STRINGS + [d.trigger, d.section_end.strip()] + list(d.special_tokens):
            enc = tokenizer.encode(s, add_special_tokens=False) if s else []
            if len(enc) == 1:
                ids.add(enc[0])
        self.ids = torch.tensor(sorted(ids))
        self.bias = bias
        self.eos = tokenizer.eos_token_id  # stopping after a complete call beats opening another

    def __call__(self, input_ids, scores):
        scores[:, self.ids] += self.bias
        scores[:, self.eos] += self.bias / 2
        return scores


class GumbelSample(LogitsProcessor):
    """Exact sampling at temperature 1 by the Gumbel-max trick: argmax(logits + Gumbel noise).

    Used with greedy decoding because torch.multinomial over a 129K vocabulary costs ~100 ms per
    step on CPU; the distribution sampled is the same.
    """

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)  # numpy's ziggurat is ~10x faster than torch's CPU RNG

    def __call__(self, input_ids, scores):
        noise = self.rng.standard_exponential(scores.shape, dtype=np.float32)
        np.maximum(noise, np.float32(1e-30), out=noise)  # an exact 0 would give +inf to a masked token
        np.log(noise, out=noise)
        return scores - torch.from_numpy(noise)


def sample(model, tok, dialect, tools, tool_choice="required", *, n=8, seed=0, max_new_tokens=96, first_index=0, bias=9.0, parallel=True):
    """-> list of (text, finished) for n sequences sampled at temperature 1 under the grammar
    (Gumbel-max; see GumbelSample)."""
    d = get_dialect(dialect)
    history = prepare_history([{"role": "user", "content": "Use the tools."}], d)
    prompt = render_prompt(d, history, tools)
    enc = tok([prompt] * n, return_tensors="pt", add_special_tokens=False)
    proc = ToolCallLogitsProcessor(tok, d, tools, tool_choice, parallel, first_index=first_index, vocab_size=model.config.vocab_size)
    torch.manual_seed(seed)
    out = model.generate(
        **enc,
        logits_processor=LogitsProcessorList([Nudge(tok, d, bias), proc, GumbelSample(seed)]),
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=tok.pad_token_id,
    )
    results = []
    for row, ids in enumerate(out[:, enc["input_ids"].shape[1] :].tolist()):
        finished = proc.batch.matchers[row].is_terminated()
        ids = [t for t in ids if t not in (tok.pad_token_id, tok.eos_token_id)]
        results.append((tok.decode(ids), finished))
    return results
