"""Sampling from the random demo model under a grammar, and the checks every output gets, for the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
import xgrammar as xgr
from transformers import LogitsProcessor, LogitsProcessorList

from constrained import GrammarOptions, StreamingParser, demo, parse
from constrained import dialect as registry
from constrained.chat import prepare_history, render_prompt
from constrained.compiler import grammar_cache
from constrained.decoding import GrammarBatch, GrammarState, accept_all
from constrained.guards import matcher as guarded_matcher


@cache
def hermes_tokenizer():
    """The trained demo model's tokenizer (hermes), loaded once per test process."""
    return demo.trained_tokenizer("hermes")


@cache
def hermes_compiler() -> xgr.GrammarCompiler:
    """A plain xgrammar compiler over it (not the server's grammar cache)."""
    tok = hermes_tokenizer()
    return xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok)))


def mask_agrees_with_accepting(compiled, text: str, cuts: list[int], tok=None):
    """Feed ``text`` token by token, tokenized in pieces cut at ``cuts`` (so that token boundaries
    fall anywhere, inside escapes too). At every step the guarded matcher's mask must allow the
    next token exactly when accepting it does. Returns the matcher after the whole text, or None
    at the first token refused."""
    tok = tok or hermes_tokenizer()
    pieces, rest = [], text
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    ids = [t for piece in [*pieces, rest] if piece for t in tok.encode(piece, add_special_tokens=False)]
    m = guarded_matcher(compiled, terminate_without_stop_token=True)
    bitmask = xgr.allocate_token_bitmask(1, len(tok))
    for t in ids:
        m.fill_next_token_bitmask(bitmask, 0)
        allowed = bool((int(bitmask[0, t >> 5]) >> (t & 31)) & 1)
        accepted = m.fork().accept_token(t)
        assert allowed == accepted, (text, tok.decode([t]))
        if not accepted:
            return None
        m.accept_token(t)
    return m


def Nudge(tokenizer, dialect, bias: float = 9.0, trigger_bias: float = 14.0, eos_bias: float = 12.0) -> demo.Nudge:
    """The tests' nudge (see `constrained.demo`): closers and the dialect's markers, EOS (stopping
    after a call beats opening another), and in auto mode the trigger, so that calls are opened
    more often than not. The trigger's first token is favoured at every step when it is the whole
    trigger and calls have a section or a separator between them; otherwise at the first step only,
    or a one-character trigger (pythonic "[") would flood every string and a trigger that opens
    each call right after the last (GLM-4.7, Mistral v11) would chain calls up to max_calls.
    Multi-token markers, once begun, are seen through (`demo.nudge_sequences`)."""
    d = registry.get(dialect)
    # what ends a string (a quote, a raw value's closing tag) a little more: strings stay short,
    # so that outputs finish within the token budget
    every = [((*demo.NUDGE_CLOSERS, "\n", "x", "@section_end", "@special", "@value_end"), bias), (('"', "@value_end"), 2.5),
             (("@eos",), eos_bias)]
    sequences = demo.nudge_sequences(tokenizer, d, trigger_bias)
    trigger = [(("@trigger",), trigger_bias)]
    first = tokenizer.encode(demo.opening(d), add_special_tokens=False)
    if len(first) == 1 and len(d.trigger) > 1 and (d.section_begin or d.call_separator):
        return demo.Nudge(demo.nudge_bias(tokenizer, d, every + trigger), sequences=sequences)
    return demo.Nudge(demo.nudge_bias(tokenizer, d, every), demo.nudge_bias(tokenizer, d, trigger), sequences=sequences)


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


class RowGrammars(LogitsProcessor):
    """Each row of a `generate` call under its own grammar (the logits processor takes one)."""

    def __init__(self, compiled, stop_ids, vocab_size):
        self.states = [GrammarState(c, stop_ids) for c in compiled]
        self.batch = GrammarBatch(vocab_size, len(compiled))
        self.length = None

    def __call__(self, input_ids, scores):
        if self.length is not None:
            accept_all(self.states, input_ids[:, -1].tolist())
        self.length = input_ids.shape[1]
        self.batch.apply(scores, self.batch.fill(self.states))
        return scores


@dataclass(frozen=True)
class Row:
    """One sampled output's request: its tools, tool_choice, parallel_tool_calls and first_index."""

    tools: list
    tool_choice: object = "required"
    parallel: bool = True
    first_index: int = 0


def token_budget(tok, dialect, least=128):
    """max_new_tokens for a few calls: more for formats whose markup alone is long (DSML, PLaMo)."""
    d = registry.get(dialect)
    markup = len(tok.encode(d.render_calls([{"function": {"name": "f", "arguments": {}}}]), add_special_tokens=False))
    return max(least, 40 + 3 * markup)


def sample_rows(model, tok, dialect, rows, *, seed=0, max_new_tokens=None):
    """-> list of (text, finished), one per Row, all sampled in ONE generate call (a request per
    row), at temperature 1 under each row's grammar (see ExactSample)."""
    d = registry.get(dialect)
    max_new_tokens = max_new_tokens or token_budget(tok, d)
    prompts = []
    for row in rows:
        history = prepare_history([{"role": "user", "content": "Use the tools."}], d)
        prompts.append(render_prompt(d, history, row.tools))
    cache = grammar_cache(tok, model.config.vocab_size)
    compiled = [cache.compile(d, row.tools, GrammarOptions(row.tool_choice, row.parallel, row.first_index)).grammar for row in rows]
    proc = RowGrammars(compiled, [tok.eos_token_id], model.config.vocab_size)
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(seed)
    out = model.generate(
        **enc,
        logits_processor=LogitsProcessorList([Nudge(tok, d), proc, ExactSample(seed)]),
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=tok.pad_token_id,
    )
    results = []
    for i, ids in enumerate(out[:, enc["input_ids"].shape[1] :].tolist()):
        ids = [t for t in ids if t not in (tok.pad_token_id, tok.eos_token_id)]
        results.append((tok.decode(ids), proc.states[i].is_terminated()))
    return results


# -- the checks ------------------------------------------------------------------------------------------
def stream_calls(dialect, tok, text, first_index=0, tools=None):
    """Feed the text cut at every token boundary; return (parser, deltas)."""
    parser = StreamingParser(dialect, first_index=first_index, tools=tools)
    ids = tok.encode(text, add_special_tokens=False)
    deltas, prev = [], ""
    for k in range(1, len(ids) + 1):
        now = tok.decode(ids[:k])
        if now.endswith("\ufffd"):  # a character split across tokens: wait for the rest
            continue
        deltas += parser.feed(now[len(prev) :])
        prev = now
    deltas += parser.feed(text[len(prev) :]) if text != prev else []
    deltas += parser.finish()
    return parser, deltas


def check_stream_matches(dialect, tok, text, whole, first_index=0, tools=None):
    parser, deltas = stream_calls(dialect, tok, text, first_index, tools)
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    headers = [c for c in calls if "id" in c]
    assert [h["function"]["name"] for h in headers] == [c["function"]["name"] for c in whole.tool_calls]
    assert [h["index"] for h in headers] == list(range(len(whole.tool_calls)))  # once each, in order
    for i, call in enumerate(whole.tool_calls):
        fragments = "".join(c["function"]["arguments"] for c in calls if c["index"] == i)
        assert fragments == call["function"]["arguments"]
        json.loads(fragments)
    # calls are never interleaved: indices only grow
    indices = [c["index"] for c in calls]
    assert indices == sorted(indices)
    assert (parser.content or None) == whole.content
    assert (parser.reasoning or None) == whole.reasoning


def check_roundtrip(dialect_name, tok, tools, calls, first_index=0):
    """render(calls) is accepted by the grammar and parses back to the same calls."""
    d = registry.get(dialect_name)
    text = d.render_calls(calls, first_index, tools)
    cache = grammar_cache(tok)
    compiled = cache.compile(d, tools, GrammarOptions("required", True, first_index, max(8, len(calls)), reasoning=False)).grammar
    matcher = guarded_matcher(compiled, override_stop_tokens=[tok.eos_token_id])
    for t in tok.encode(text, add_special_tokens=False):
        assert matcher.accept_token(t), (dialect_name, text)
    assert matcher.is_completed()
    back = parse(text, d, tools, first_index=first_index)
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in back.tool_calls] == [
        (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls
    ]


CLIENTS = Path(__file__).parent / "seed_clients"


def run_client(script: str, env: dict, timeout: float = 240) -> str:
    """Run a seed's client loop (tests/seed_clients/, the seed's own code) to completion; its stdout."""
    proc = subprocess.run(
        [sys.executable, str(CLIENTS / script)], cwd=CLIENTS, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(CLIENTS), **env},
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def whole_utf8(data: bytes) -> bool:
    """Is `data` whole UTF-8 text (no character cut)?"""
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def row_bits(row, n: int):
    """The allowed tokens (a bool per id below `n`) of one packed bitmask row (tensor or array)."""
    import numpy as np

    words = row.numpy() if hasattr(row, "numpy") else row
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:n].astype(bool)


def allowed(state: GrammarState, n: int, bitmask=None):
    """The tokens `state` allows now (its mask filled into row 0 of `bitmask`, or of a new one)."""
    bitmask = xgr.allocate_token_bitmask(1, n) if bitmask is None else bitmask
    state.fill(bitmask, 0)
    return row_bits(bitmask[0], n)
