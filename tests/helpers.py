"""Sampling from the random demo model under a grammar, for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from constrained import ToolCallLogitsProcessor, demo
from constrained import dialect as registry
from constrained.chat import prepare_history, render_prompt


def Nudge(tokenizer, dialect, bias: float = 9.0, trigger_bias: float = 14.0, eos_bias: float = 12.0) -> demo.Nudge:
    """The tests' nudge (see `constrained.demo`): closers and the dialect's markers, EOS (stopping
    after a call beats opening another), and in auto mode the trigger, so that calls are opened
    more often than not. A one-character trigger (pythonic "[") is favoured at the first step only,
    or it would flood every string."""
    d = registry.get(dialect)
    every = [((*demo.NUDGE_CLOSERS, "\n", "x", "@section_end", "@special"), bias), (("@eos",), eos_bias)]
    trigger = [(("@trigger",), trigger_bias)]
    if len(d.trigger) > 1:
        return demo.Nudge(demo.nudge_bias(tokenizer, d, every + trigger))
    return demo.Nudge(demo.nudge_bias(tokenizer, d, every), demo.nudge_bias(tokenizer, d, trigger))


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
    d = registry.get(dialect)
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
        finished = proc.states[row].is_terminated()
        ids = [t for t in ids if t not in (tok.pad_token_id, tok.eos_token_id)]
        results.append((tok.decode(ids), finished))
    return results


CLIENTS = Path(__file__).parent / "seed_clients"


def run_client(script: str, env: dict, timeout: float = 240) -> str:
    """Run a seed's client loop (tests/seed_clients/, the seed's own code) to completion; its stdout."""
    proc = subprocess.run(
        [sys.executable, str(CLIENTS / script)], cwd=CLIENTS, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(CLIENTS), **env},
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout
