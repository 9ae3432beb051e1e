"""ToolCallLogitsProcessor inside real `model.generate` calls."""

from __future__ import annotations

import torch
from helpers import Nudge

from constrained import ToolCallLogitsProcessor, parse
from constrained import dialect as registry
from constrained.chat import prepare_history, render_prompt

TOOLS = [
    {"type": "function", "function": {"name": "set_mode", "parameters": {"type": "object", "properties": {"mode": {"enum": ["on", "off"]}, "level": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["mode", "level"]}}},
]


def _prompts(dialect, tok, texts):
    d = registry.get(dialect)
    return [render_prompt(d, prepare_history([{"role": "user", "content": t}], d), TOOLS) for t in texts]


def _generate(model, tok, proc, prompts, **kw):
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**enc, logits_processor=[proc], max_new_tokens=96, pad_token_id=tok.pad_token_id, **kw)
    texts = []
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        assert tok.eos_token_id in row, "a finished grammar allows only EOS, so every row ends with it"
        texts.append(tok.decode(row[: row.index(tok.eos_token_id)]))
    return texts


def test_batch_with_left_padding_greedy(demo_models):
    model, tok = demo_models("minimax_m1")
    proc = ToolCallLogitsProcessor(tok, "minimax_m1", TOOLS, "required", False, reasoning=False, vocab_size=model.config.vocab_size)
    prompts = _prompts("minimax_m1", tok, ["a", "a much longer request with many more words in it", "mid length one"])
    texts = _generate(model, tok, proc, prompts, do_sample=False)
    for text in texts:
        result = parse(text, "minimax_m1", tools=TOOLS)
        assert result.tool_calls and result.violations == [], text


def test_a_new_generate_call_starts_clean(demo_models):
    model, tok = demo_models("kimi_k2")
    proc = ToolCallLogitsProcessor(tok, "kimi_k2", TOOLS, "required", False, first_index=2, reasoning=False, vocab_size=model.config.vocab_size)
    first = _generate(model, tok, proc, _prompts("kimi_k2", tok, ["one", "two"]), do_sample=False)
    second = _generate(model, tok, proc, _prompts("kimi_k2", tok, ["a different, longer prompt"]), do_sample=False)
    for text in first + second:
        calls = parse(text, "kimi_k2", tools=TOOLS).tool_calls
        assert calls and calls[0]["id"] == "functions.set_mode:2", text


def test_real_sampling_with_multinomial(demo_models):
    model, tok = demo_models("hermes")
    proc = ToolCallLogitsProcessor(tok, "hermes", TOOLS, "required", vocab_size=model.config.vocab_size)
    enc = tok(_prompts("hermes", tok, ["x"]) * 4, return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(3)
    out = model.generate(**enc, logits_processor=[Nudge(tok, "hermes"), proc], do_sample=True, temperature=1.0, top_p=0.95,
                         max_new_tokens=60, pad_token_id=tok.pad_token_id)
    finished = 0
    for row_index, row in enumerate(out[:, enc["input_ids"].shape[1] :].tolist()):
        text = tok.decode([t for t in row if t not in (tok.eos_token_id, tok.pad_token_id)])
        result = parse(text, "hermes", tools=TOOLS)  # never raises, finished or not
        if proc.is_done(row_index):
            finished += 1
            assert result.tool_calls and result.violations == [], text
    assert finished >= 1


def test_pythonic_auto_gives_calls_or_text_never_both(demo_models):
    model, tok = demo_models("pythonic")
    proc = ToolCallLogitsProcessor(tok, "pythonic", TOOLS, "auto", vocab_size=model.config.vocab_size)
    enc = tok(_prompts("pythonic", tok, ["hi"]), return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, logits_processor=[Nudge(tok, "pythonic"), proc], do_sample=False, max_new_tokens=30, pad_token_id=tok.pad_token_id)
    text = tok.decode([t for t in out[0, enc["input_ids"].shape[1]:].tolist() if t != tok.eos_token_id])
    result = parse(text, "pythonic", tools=TOOLS)
    assert result.violations == []
    assert not (result.tool_calls and result.content)  # auto: a call list or text (or nothing), never both
