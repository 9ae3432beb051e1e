"""Validity and accuracy, free vs constrained decoding, per dialect.

For each output: parsed (at least one call came out of `constrained.parse`), valid (calls parsed and
every call validates against its schema), exact (the calls equal the reference: name, arguments and
Kimi's id), canonical (written exactly as the dialect renders them: what strict parsers such as
vLLM's M1 line parser need; our parser is lenient, so `parsed` is the best case for free decoding),
finished (the grammar completed / EOS was written before the token budget).

Two models:
- the model under test (`constrained.demo` random model by default, or `--model PATH`): a random
  model sampled at temperature 1 (Gumbel-max, with the closing-token nudge so that it finishes);
  free decoding of a random model essentially never writes a call;
- the format-drift model (`benchmarks/drift.py`): knows the answer, makes real models' format
  errors; tool_choice "auto".
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch

from .common import (
    BenchConfig,
    GumbelSample,
    ModelSource,
    Nudge,
    case_prompt,
    encode_batch,
    make_cases,
    new_tokens,
    score_output,
    shares,
    vocab_size,
)


def _finished(tok, out_row: list[int], proc=None, row: int = 0) -> bool:
    if proc is not None and hasattr(proc, "is_done"):
        return bool(proc.is_done(row))
    return tok.eos_token_id in out_row


def run_model(source: ModelSource, dialect, cfg: BenchConfig, tick: Callable[[], None] = lambda: None) -> dict:
    """The demo (random) model or a real checkpoint, free vs constrained."""
    from constrained import ToolCallLogitsProcessor

    model, tok = source.load(dialect.name)
    groups = make_cases(dialect, cfg, cfg.demo_prompts, seed=cfg.seed)
    choice = "required" if source.is_demo else "auto"
    rows: dict[str, list[dict]] = {"free": [], "constrained": []}
    samples: dict[str, list[str]] = {"free": [], "constrained": []}
    walks: list[tuple[Any, list[int]]] = []  # (case, constrained token ids): replayed by the mask timer
    for g, cases in enumerate(groups):
        prompts = [case_prompt(tok, dialect, c, use_chat_template=not source.is_demo) for c in cases]
        enc = encode_batch(tok, prompts, source.device)
        plen = enc["input_ids"].shape[1]
        for mode in ("free", "constrained"):
            procs: list = [Nudge(tok, dialect)] if source.is_demo else []
            grammar = None
            if mode == "constrained":
                grammar = ToolCallLogitsProcessor(tok, dialect, cases[0].tools, choice, first_index=cases[0].first_index, vocab_size=vocab_size(model))
                procs.append(grammar)
            if source.is_demo:
                procs.append(GumbelSample(cfg.seed * 1000 + g))
            with torch.no_grad():
                out = model.generate(**enc, logits_processor=procs, do_sample=False, max_new_tokens=cfg.demo_max_tokens,
                                     pad_token_id=tok.pad_token_id)
            raw = out[:, plen:].tolist()
            for r, (case, ids) in enumerate(zip(cases, new_tokens(tok, out, plen))):
                text = tok.decode(ids)
                score = score_output(text, dialect, case)
                score["finished"] = _finished(tok, raw[r], grammar, r)
                if grammar is not None:
                    score["budget_closed"] = grammar.budget_forced(r)
                rows[mode].append(score)
                if len(samples[mode]) < 3:
                    samples[mode].append(text[:300])
                if mode == "constrained":
                    walks.append((case, ids))
            tick()
    return {
        "model": f"random weights, {source.shape or 'demo'} shape" if source.is_demo else source.path,
        "tool_choice": choice,
        "max_new_tokens": cfg.demo_max_tokens,
        "free": shares(rows["free"]),
        "constrained": shares(rows["constrained"]),
        "samples": samples,
        "_walks": walks,
    }


def run_drift(source: ModelSource, dialect, cfg: BenchConfig, tick: Callable[[], None] = lambda: None) -> dict:
    """The format-drift model, free vs constrained (same plans, same prompts)."""
    from constrained import ToolCallLogitsProcessor
    from constrained.compiler import grammar_cache

    from .drift import KINDS, DriftModel, make_plan

    base, tok = source.load(dialect.name)
    vocab = vocab_size(base)
    info = grammar_cache(tok, vocab).info
    model = DriftModel.for_tokenizer(tok, vocab, info.decoded_vocab).to(source.device)
    groups = make_cases(dialect, cfg, cfg.drift_prompts, group_size=cfg.drift_batch, seed=cfg.seed + 1)
    rng = random.Random(f"drift-{dialect.name}-{cfg.seed}")
    rows: dict[str, list[dict]] = {"free": [], "constrained": []}
    by_kind: dict[str, dict[str, list[dict]]] = defaultdict(lambda: {"free": [], "constrained": []})
    examples: list[dict] = []
    lost = 0
    for cases in groups:
        plans = [make_plan(dialect, c, cfg.drift_rate, rng) for c in cases]
        prompts = [case_prompt(tok, dialect, c) for c in cases]
        model.plans.clear()
        for p, plan in zip(prompts, plans):
            model.register(tok.encode(p, add_special_tokens=False), plan)
        enc = encode_batch(tok, prompts, source.device)
        plen = enc["input_ids"].shape[1]
        budget = max(len(tok.encode(p.intended, add_special_tokens=False)) for p in plans) + 48
        for mode in ("free", "constrained"):
            grammar = None
            procs: list = []
            if mode == "constrained":
                grammar = ToolCallLogitsProcessor(tok, dialect, cases[0].tools, "auto", first_index=cases[0].first_index, vocab_size=vocab)
                procs.append(grammar)
            before = model.lost_steps
            with torch.no_grad():
                out = model.generate(**enc, logits_processor=procs, do_sample=False, max_new_tokens=budget, use_cache=False,
                                     pad_token_id=tok.pad_token_id)
            lost += model.lost_steps - before
            raw = out[:, plen:].tolist()
            for r, (case, plan, ids) in enumerate(zip(cases, plans, new_tokens(tok, out, plen))):
                text = tok.decode(ids)
                score = score_output(text, dialect, case)
                score["finished"] = _finished(tok, raw[r], grammar, r)
                if grammar is not None:
                    score["budget_closed"] = grammar.budget_forced(r)
                rows[mode].append(score)
                for kind in plan.kinds or ["none"]:
                    by_kind[kind][mode].append(score)
                if mode == "constrained" and plan.kinds and len(examples) < 4:
                    examples.append({"errors": plan.kinds, "intended": plan.intended[:400], "constrained": text[:400]})
            tick()
    kinds = {k: {"n": len(v["free"]), "free": shares(v["free"]), "constrained": shares(v["constrained"])}
             for k, v in sorted(by_kind.items(), key=lambda kv: (kv[0] == "none", KINDS.index(kv[0]) if kv[0] in KINDS else 99))}
    return {
        "rate": cfg.drift_rate,
        "tool_choice": "auto",
        "free": shares(rows["free"]),
        "constrained": shares(rows["constrained"]),
        "by_error": kinds,
        "lost_steps": lost,
        "examples": examples,
    }


def units(dialect, cfg: BenchConfig) -> int:
    """Progress-bar units: one per generate call."""
    try:
        n = len(make_cases(dialect, cfg, cfg.demo_prompts, seed=cfg.seed)) + len(make_cases(dialect, cfg, cfg.drift_prompts, group_size=cfg.drift_batch, seed=cfg.seed + 1))
    except RuntimeError:
        return 0
    return 2 * n
