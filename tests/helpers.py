"""Sampling from the random demo model under a grammar, for the tests."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from constrained import ToolCallLogitsProcessor
from constrained.chat import prepare_history, render_prompt
from constrained.grammars import get_dialect


class Nudge(LogitsProcessor):
    """Raise the logits of tokens that close structures (quotes, brackets), of the call trigger and
    of EOS.

    A uniformly random model almost never closes a string in a 129K vocabulary, nor opens a tool
    section in `auto`; the nudge makes it do both within a test's token budget. It runs BEFORE the
    grammar mask, so the grammar alone still decides what is allowed: the guarantee under test is
    unchanged.
    """

    CLOSERS = ['"', "}", "]", ")", ",", "0", "1", "7", "true", "false", "null", "True", "False", "None", "\n", "x"]

    def __init__(self, tokenizer, dialect, bias: float = 9.0, trigger_bias: float = 14.0, eos_bias: float = 12.0):
        d = get_dialect(dialect)

        def single_tokens(strings):
            encoded = (tokenizer.encode(s, add_special_tokens=False) for s in strings if s)
            return sorted({ids[0] for ids in encoded if len(ids) == 1})

        structure = [d.section_end.strip(), *d.special_tokens]
        self.biases = [
            (torch.tensor(single_tokens(self.CLOSERS + structure)), bias),
            (torch.tensor([tokenizer.eos_token_id]), eos_bias),  # stopping after a call beats opening another
        ]
        # in auto: open a section more often than stop. A one-character trigger (pythonic "[") is
        # favoured at the first step only, or it would flood every string.
        self.trigger = (torch.tensor(single_tokens([d.trigger])), trigger_bias)
        self.trigger_always = len(d.trigger) > 1
        self.first_length = None

    def __call__(self, input_ids, scores):
        if self.first_length is None or input_ids.shape[1] <= self.first_length:
            self.first_length = input_ids.shape[1]
        biases = self.biases
        if self.trigger_always or input_ids.shape[1] == self.first_length:
            biases = biases + [self.trigger]
        for ids, bias in biases:
            scores[:, ids] += bias
        return scores


class ExactSample(LogitsProcessor):
    """Exact sampling at temperature 1 by inverse CDF, then greedy picks the sampled token.

    `torch.multinomial` over a 129K vocabulary costs ~100 ms per step on this CPU; softmax, cumsum
    and searchsorted cost a fifth of that and sample the same distribution.
    """

    def __init__(self, seed: int):
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, input_ids, scores):
        cdf = torch.softmax(scores.float(), dim=-1).cumsum_(dim=-1)
        u = torch.rand(scores.shape[0], 1, generator=self.gen) * cdf[:, -1:]
        picked = torch.searchsorted(cdf, u, right=True).clamp_(max=scores.shape[1] - 1)  # right: never a 0-probability token
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, picked, 0.0)


def sample(model, tok, dialect, tools, tool_choice="required", *, n=8, seed=0, max_new_tokens=96, first_index=0, parallel=True):
    """-> list of (text, finished) for n sequences sampled at temperature 1 under the grammar
    (see ExactSample)."""
    d = get_dialect(dialect)
    history = prepare_history([{"role": "user", "content": "Use the tools."}], d)
    prompt = render_prompt(d, history, tools)
    enc = tok([prompt] * n, return_tensors="pt", add_special_tokens=False)
    proc = ToolCallLogitsProcessor(tok, d, tools, tool_choice, parallel, first_index=first_index, vocab_size=model.config.vocab_size)
    torch.manual_seed(seed)
    out = model.generate(
        **enc,
        logits_processor=LogitsProcessorList([Nudge(tok, d), proc, ExactSample(seed)]),
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
