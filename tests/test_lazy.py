"""Large grammars served by llguidance (constrained.lazy): the route is chosen by size and only
where the translation is exact; the matcher keeps xgrammar's meaning of refusal, rollback, stop
tokens and forks (a property test drives both routes through the same random operations); and a
large tool is served end to end by `generate` and by the real server."""

from __future__ import annotations

import functools
import json
import re

import httpx
import jsonschema
import numpy as np
import pytest
import xgrammar as xgr
from helpers import allowed, row_bits, whole_utf8
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import OpenAI

from constrained import ToolCallLogitsProcessor, demo, parse
from constrained import dialect as registry
from constrained.budget import jump_forward_string
from constrained.chat import prepare_history, render_prompt
from constrained.compiler import grammar_cache
from constrained.decoding import GrammarBatch, GrammarState
from constrained.grammar import GrammarOptions
from constrained.lazy import LAZY_FROM_CHARS, LazyGrammar
from constrained.server.config import ServerConfig
from constrained.server.testing import DemoServer
from constrained.types import Tool

HERMES = registry.get("hermes")
REQUIRED = GrammarOptions(tool_choice="required")
# a long enumeration (time zones, product codes): one property, a grammar text past LAZY_FROM_CHARS
ZONES = [f"Zone/{a}{b}{c}_{i}" for i, (a, b, c) in enumerate(zip("ABCDEFGHIJ" * 600, "klmnopqrst" * 600, "UVWXYZ" * 1000))]
LARGE = Tool("set_zone", {"type": "object", "properties": {"zone": {"enum": ZONES}, "note": {"type": "string", "maxLength": 20}},
                          "required": ["zone"]})
SMALL = Tool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 14}},
                             "required": ["city"]})


def _hermes():
    tok = demo.load_tokenizer(HERMES)
    return tok, grammar_cache(tok), [tok.convert_tokens_to_ids(t) for t in HERMES.chat.stop_tokens]


def test_the_route_follows_the_grammar_size_and_refusals_stay_with_xgrammar():
    tok, cache, _ = _hermes()
    assert len(cache.ebnf(HERMES, [LARGE], REQUIRED)) >= LAZY_FROM_CHARS > len(cache.ebnf(HERMES, [SMALL], REQUIRED))
    before = cache.stats.lazy_compiles
    assert isinstance(cache.compile(HERMES, [LARGE], REQUIRED).grammar, LazyGrammar)
    assert isinstance(cache.compile(HERMES, [SMALL], REQUIRED).grammar, xgr.CompiledGrammar)
    assert cache.stats.lazy_compiles == before + 1
    # a pattern the translation cannot keep exact (`.`): xgrammar serves it, however large
    dotted = Tool("t", {"type": "object", "properties": {"zone": {"enum": ZONES}, "code": {"type": "string", "pattern": "^a.c$"}},
                        "required": ["zone", "code"]})
    assert len(cache.ebnf(HERMES, [dotted], REQUIRED)) >= LAZY_FROM_CHARS
    assert isinstance(cache.compile(HERMES, [dotted], REQUIRED).grammar, xgr.CompiledGrammar)
    # and either route may be asked for
    assert isinstance(cache.compile(HERMES, [SMALL], REQUIRED, lazy=True).grammar, LazyGrammar)
    assert isinstance(cache.compile(HERMES, [LARGE], REQUIRED, lazy=False).grammar, xgr.CompiledGrammar)


def test_a_grammar_llguidance_refuses_is_served_by_xgrammar_with_a_warning(monkeypatch, caplog):
    """llguidance refuses a grammar past its own limits (here its grammar size, lowered so that a
    small grammar reaches it): the request is served by xgrammar, and the log says why."""
    import logging

    import llguidance

    from constrained import lazy
    from constrained.compiler import GrammarCache

    tok, _, _ = _hermes()
    monkeypatch.setattr(lazy, "_limits", lambda: llguidance.LLParserLimits(max_grammar_size=50))
    cache = GrammarCache(tok, lazy_from_chars=0)  # its own: nothing compiled before
    with caplog.at_level(logging.WARNING, logger="constrained"):
        served = cache.compile(HERMES, [SMALL], REQUIRED).grammar
    assert isinstance(served, xgr.CompiledGrammar) and cache.stats.lazy_compiles == 0
    assert "llguidance refused" in caplog.text and "compiling it with xgrammar" in caplog.text
    monkeypatch.undo()  # the same grammar within llguidance's limits: served by it
    assert isinstance(GrammarCache(tok, lazy_from_chars=0).compile(HERMES, [SMALL], REQUIRED).grammar, LazyGrammar)


def test_refusal_rollback_stop_and_fork_mean_what_they_mean_in_xgrammar():
    tok, cache, stops = _hermes()
    state = GrammarState(cache.compile(HERMES, [SMALL], REQUIRED, lazy=True).grammar, stops)
    m, n = state.matcher, cache.vocab_size
    start = allowed(state, n)
    assert not m.accept_token(tok.convert_tokens_to_ids("x")) and (allowed(state, n) == start).all()  # refused: unchanged
    assert not m.accept_token(stops[0])  # a stop token only where the output is complete
    open_, close = tok.convert_tokens_to_ids("<tool_call>"), tok.convert_tokens_to_ids("</tool_call>")
    assert not m.accept_string("<tool_call>")  # the marker is one token, never its spelling as text
    assert m.accept_token(open_) and not m.accept_string('\n{"name": "nope"')
    assert m.accept_string('\n{"name": "get_weather", "arguments": {"city": "Oslo"')
    after = allowed(state, n)
    m.rollback(1)  # a string is one step, however many tokens it took
    assert m.accept_string('\n{"name": "get_weather", "arguments": {"city": "Oslo"') and (allowed(state, n) == after).all()
    assert m.accept_string('}}\n') and m.accept_token(close)
    fork = m.fork()
    assert m.is_completed() and not m.is_terminated() and allowed(state, n)[stops].all()
    assert m.accept_token(stops[0]) and m.is_terminated() and not allowed(state, n).any()
    assert not m.accept_token(stops[0]) and not m.accept_string(" ")
    m.rollback(1)  # the stop token taken back
    assert not m.is_terminated() and m.is_completed()
    assert not fork.is_terminated() and fork.accept_token(stops[0]) and not m.is_terminated()  # forks are apart
    with pytest.raises(ValueError, match="roll back"):
        m.rollback(5)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["token", "token", "token", "forced", "rollback"]), st.integers(0, 2**16)), max_size=30))
def test_both_routes_agree_through_any_walk_of_accepts_forced_text_and_rollbacks(ops):
    """The same operations on xgrammar's matcher and on llguidance's: the allowed tokens, the
    completion and the forced text agree after each (llguidance's two stricter points aside:
    a special token is never text, text stays whole UTF-8; the walk keeps to neither)."""
    tok, cache, stops = _hermes()
    n = cache.vocab_size
    ours = GrammarState(cache.compile(HERMES, [SMALL], REQUIRED, lazy=False).grammar, stops)
    theirs = GrammarState(cache.compile(HERMES, [SMALL], REQUIRED, lazy=True).grammar, stops)
    special = _special_ids()
    steps = 0
    for op, pick in ops:
        x, y = allowed(ours, n), allowed(theirs, n)
        x[special] = y[special] = False
        text_ok = np.array([t < n and whole_utf8(cache.decoded_vocab[t]) for t in np.flatnonzero(x)], dtype=bool)
        assert (x == y).all(), [tok.decode([int(t)]) for t in np.flatnonzero(x != y)[:8]]
        assert ours.is_completed() == theirs.is_completed() and ours.is_terminated() == theirs.is_terminated()
        assert _forced(ours) == _forced(theirs)
        if op == "rollback" and steps:
            k = 1 + pick % steps
            ours.rollback(k)
            theirs.rollback(k)
            steps -= k
        elif op == "forced":
            forced = _forced(ours)
            if forced:
                assert ours.matcher.accept_string(forced) and theirs.matcher.accept_string(forced)
                steps += 1
        else:
            choices = np.flatnonzero(x)[text_ok] if text_ok.any() else np.flatnonzero(x)
            if not len(choices):
                continue
            token = int(choices[pick % len(choices)])
            assert ours.accept(token) and theirs.accept(token)
            steps += 1


def _forced(state: GrammarState) -> str:
    return jump_forward_string(state.matcher).split("\x01")[0]  # up to a marker token


@functools.cache
def _special_ids() -> np.ndarray:
    ll = _hermes()[1].llguidance_tokenizer
    return np.array([i for i in range(ll.vocab_size) if ll.is_special_token(i)], dtype=np.int64)


def test_a_batch_fills_xgrammar_rows_and_llguidance_rows_alike():
    tok, cache, stops = _hermes()
    n = cache.vocab_size
    states = [GrammarState(cache.compile(HERMES, [SMALL], REQUIRED, lazy=lazy).grammar, stops) for lazy in (False, True, False, True)]
    for s, text in zip(states, ["<tool_call>", "<tool_call>", "", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "']):
        assert all(s.accept(t) for t in tok.encode(text, add_special_tokens=False))
    batch = GrammarBatch(n, 5)
    rows = batch.fill([*states, None])
    assert rows == [0, 1, 2, 3]
    filled = batch.bitmask.clone()
    for i, s in enumerate(states):
        assert (row_bits(filled[i], n) == allowed(s, n)).all()
    assert (filled[0] == filled[1]).all() and not (filled[2] == filled[3]).all()


def _check_call(text: str, dialect: str, tools: list[dict]) -> dict:
    result = parse(text, dialect, tools=tools)
    assert result.tool_calls and result.violations == [], text
    args = json.loads(result.tool_calls[0]["function"]["arguments"])
    jsonschema.validate(args, tools[0]["function"]["parameters"])
    return args


def _openai(tool: Tool) -> dict:
    return {"type": "function", "function": {"name": tool.name, "parameters": tool.parameters}}


def test_generate_serves_a_large_tool_lazily(demo_models):
    model, tok = demo_models("hermes")
    tools = [_openai(LARGE)]
    proc = ToolCallLogitsProcessor(tok, "hermes", tools, "required", False, reasoning=False, vocab_size=model.config.vocab_size)
    assert isinstance(proc.compiled, LazyGrammar)
    # the prompt leaves the tool out (its 6,000 values are 50K tokens, past the demo model's
    # context): the grammar alone makes the call
    prompts = [render_prompt(HERMES, prepare_history([{"role": "user", "content": t}], HERMES), []) for t in ["set my zone", "zone please"]]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**enc, logits_processor=[proc], max_new_tokens=160, do_sample=True, pad_token_id=tok.pad_token_id)
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        assert tok.eos_token_id in row
        assert _check_call(tok.decode(row[: row.index(tok.eos_token_id)]), "hermes", tools)["zone"] in ZONES


# a tool of nested objects, arrays, enums, bounded strings and numbers, served by llguidance here
# (the server's --lazy-from 0: a schema the size of LARGE would not fit the demo model's prompt)
NESTED = Tool("book_trip", {"type": "object", "required": ["traveler", "legs"], "properties": {
    "traveler": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 30}, "age": {"type": "integer", "minimum": 0, "maximum": 120}}},
    "legs": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "object", "required": ["to"], "properties": {
        "to": {"enum": ["OSL", "CDG", "NRT", "SFO"]}, "class": {"enum": ["economy", "business"]}, "price": {"type": "number"}}}},
    "notes": {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "null"}]}}})


def test_the_server_serves_lazily_and_says_so_in_its_metrics():
    server = DemoServer("hermes", config=ServerConfig(lazy_from_chars=0, grammar_cache_mb=64))
    try:
        sdk = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        tools = [_openai(NESTED)]
        for k in range(3):
            reply = sdk.chat.completions.create(model=server.model, messages=[{"role": "user", "content": f"book {k}"}],
                                                tools=tools, tool_choice="required", max_tokens=200, temperature=1.0, seed=k)
            call = reply.choices[0].message.tool_calls[0]
            assert call.function.name == "book_trip"
            jsonschema.validate(json.loads(call.function.arguments), NESTED.parameters)
        stream = sdk.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "stream it"}], tools=tools,
                                             tool_choice="required", max_tokens=200, stream=True, seed=7)
        arguments = "".join(c.choices[0].delta.tool_calls[0].function.arguments or "" for c in stream if c.choices and c.choices[0].delta.tool_calls)
        jsonschema.validate(json.loads(arguments), NESTED.parameters)
        metrics = httpx.get(server.url + "/metrics").text
        lazy = re.search(r"^constrained_grammar_lazy_compiles_total (\d+)$", metrics, re.M)
        assert lazy and int(lazy[1]) == 2  # the start-up's warm-up grammar and the request's
        grammars = server.state.cache._cache.values()
        assert len(grammars) == 1 and isinstance(grammars[0], LazyGrammar)  # the request's (the warm-up's is not kept)
        # what they hold is counted, and the server's own bound is the one it was given
        held = re.search(r"^constrained_grammar_cache_bytes (\d+)$", metrics, re.M)
        assert held and int(held[1]) == grammars[0].memory_bytes > 0
        assert re.search(r"^constrained_grammar_cache_entries 1$", metrics, re.M)
        assert server.state.cache._cache.max_bytes == 64 * 1024 * 1024
    finally:
        server.close()
