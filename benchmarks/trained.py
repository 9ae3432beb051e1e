"""The trained demo model, free vs constrained: does it call the tool the request asks for, with
the request's values, and does its output parse?

Held-out dialogues (`constrained.dialogues`, seeds the training never used) per dialect; the
model writes the first assistant turn, greedily, once freely and once under our grammar
(`tool_choice: auto`). Scored against the dialogue's reference:
- parsed: the output's calls parse (for a text answer: the output has no call);
- valid: every call parses and validates against its tool's schema, and the output ended;
- exact: the calls equal the reference (names and arguments), or a text answer where the
  reference is text;
- finished: the output ended (stop token) within max_new_tokens.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import torch

from constrained import dialogues, parse
from constrained.compiler import eos_token_ids
from constrained.processor import ToolCallLogitsProcessor

from .common import shares as common_shares

# Far from the training stream's seed (0): held-out dialogues.
HELD_OUT_SEED = 1_000_003


def held_out(n: int, words: list[str], seed: int = HELD_OUT_SEED) -> list[dialogues.Dialogue]:
    rng = random.Random(seed)
    return [dialogues.make_dialogue(rng, words, dropped_assistant=0.0) for _ in range(n)]


def score(text: str, finished: bool, dialect, dialogue: dialogues.Dialogue) -> dict:
    r = parse(text, dialect, tools=dialogue.tools or None)
    return score_calls(r.tool_calls, r.violations, finished, dialogue)


def score_calls(calls: list[dict], violations: list[str], finished: bool, dialogue: dialogues.Dialogue) -> dict:
    """An answer's calls (OpenAI form, read by any parser) and their schema violations, scored
    against the dialogue's reference (see the module's docstring)."""
    got = []
    for c in calls:
        try:
            got.append((c["function"]["name"], json.loads(c["function"]["arguments"])))
        except ValueError:
            got.append((c["function"]["name"], None))
    want = [(c["name"], c["arguments"]) for c in dialogue.calls]
    parsed = bool(calls) if want else not calls
    valid = finished and not violations and all(a is not None for _, a in got)
    return {"parsed": parsed, "valid": valid and parsed, "exact": valid and got == want, "finished": finished,
            "kind": dialogue.kind}


def generate(model, tok, dialect, dialogue: dialogues.Dialogue, constrained: bool, max_new_tokens: int) -> tuple[str, bool]:
    """The first assistant turn. `max_new_tokens` is the allowance beyond the reference turn's own
    length: markers made of several tokens (PLaMo 3's take ~60 per call) must not decide the score."""
    prompt, reference = dialogues.prompt_and_reference(dialect, dialogue)
    max_new_tokens += len(tok(reference, add_special_tokens=False)["input_ids"])
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    stops = eos_token_ids(tok, model)
    processors = [ToolCallLogitsProcessor(tok, dialect, dialogue.tools, "auto", vocab_size=model.config.vocab_size, eos_token_id=stops)] \
        if constrained and dialogue.tools else []
    out = model.generate(**enc, logits_processor=processors, do_sample=False, max_new_tokens=max_new_tokens,
                         eos_token_id=stops, pad_token_id=tok.pad_token_id)
    ids = out[0, enc["input_ids"].shape[1]:].tolist()
    finished = bool(ids) and ids[-1] in stops
    return tok.decode([t for t in ids if t not in stops], skip_special_tokens=False), finished


def run(dialect, n: int, max_new_tokens: int = 48, tick: Callable[[], Any] = lambda: None) -> dict:
    from constrained import demo

    model, tok = demo.load(dialect)
    torch.manual_seed(0)
    cases = held_out(n, dialogues.vocabulary_words(tok))
    rows: dict[str, list[dict]] = {"free": [], "constrained": []}
    for dialogue in cases:
        for mode in rows:
            text, finished = generate(model, tok, dialect, dialogue, mode == "constrained", max_new_tokens)
            rows[mode].append(score(text, finished, dialect, dialogue))
        tick()
    return {mode: shares(r) for mode, r in rows.items()}


def shares(rows: list[dict]) -> dict:
    out = common_shares(rows, ("parsed", "valid", "exact", "finished"))
    calls = [r for r in rows if r["kind"] == "call"]
    out["exact_calls"] = sum(r["exact"] for r in calls) / len(calls) if calls else None
    return out
