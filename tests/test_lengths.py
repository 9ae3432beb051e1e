"""String lengths above the chain limit, counted at run time (constrained.lengths): any bound, exact
counts (escapes and surrogate pairs are one character), through accept_string, token by token,
under sampled decoding, and under the token budget."""

from __future__ import annotations

import functools
import json
import random
from functools import cache

import jsonschema
import pytest
import torch
import xgrammar as xgr
from helpers import ExactSample, hermes_compiler, hermes_tokenizer, mask_agrees_with_accepting
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrained import ToolCallLogitsProcessor, demo, parse
from constrained import dialect as registry
from constrained.chat import prepare_history, render_prompt
from constrained.decoding import GrammarBatch, GrammarState
from constrained.guards import matcher as guarded_matcher
from constrained.lengths import CLEAN, GuardedMatcher, _states, length_rules, scan, token_table
from constrained.schema import normalize
from constrained.schema.strings import LENGTH_CHAIN_LIMIT
from constrained.tools.coverage import schema_grammar

TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


_tok, _compiler = hermes_tokenizer, hermes_compiler


@cache
def _compiled(schema_json: str):
    norm = normalize(json.loads(schema_json))
    assert norm.unenforced == ()
    return _compiler().compile_grammar(schema_grammar(norm.schema))


def _bounded(low, high):
    return {"type": "string", "minLength": low, **({"maxLength": high} if high is not None else {})}


@settings(max_examples=300, deadline=None)
@given(text=TEXT, ascii_only=st.booleans(), cuts=st.lists(st.integers(1, 8), max_size=12))
def test_scan_counts_what_json_loads_reads(text, ascii_only, cuts):
    """From the opening quote on, in pieces cut anywhere (inside escapes too), the count is
    len(json.loads(...)) and the closing quote is found where it is."""
    written = json.dumps(text, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")[1:]
    state, chars, pos, closed_at = CLEAN, 0, 0, -1
    pieces, rest = [], written
    for cut in cuts:
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    for piece in pieces:
        n, at, state = scan(state, piece)
        chars += n
        if at >= 0:
            closed_at = pos + at
            break
        pos += len(piece)
    assert (chars, closed_at) == (len(json.loads(b'"' + written)), len(written) - 1)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, low=st.integers(0, 14), span=st.one_of(st.none(), st.integers(0, 30)), ascii_only=st.booleans())
def test_every_string_is_accepted_exactly_when_it_fits(text, low, span, ascii_only):
    """As a whole string and token by token with the real tokenizer: the guard's verdict is the
    bound's, for bounds above the chain limit (escapes, non-BMP characters, quotes in the text)."""
    high = None if span is None else max(low + span, LENGTH_CHAIN_LIMIT + 1)
    if high is None and low <= LENGTH_CHAIN_LIMIT:
        low = LENGTH_CHAIN_LIMIT + 1
    schema = {"type": "object", "properties": {"s": _bounded(low, high), "t": {"type": "string", "maxLength": 12}}, "required": ["s"]}
    compiled = _compiled(json.dumps(schema))
    fits = low <= len(text) and (high is None or len(text) <= high)
    written = json.dumps({"s": text}, ensure_ascii=ascii_only)
    whole = guarded_matcher(compiled, terminate_without_stop_token=True)
    assert isinstance(whole, GuardedMatcher)
    assert (whole.accept_string(written.encode("utf-8", "surrogatepass")) and whole.is_completed()) == fits
    if ascii_only or not any("\ud800" <= c <= "\udfff" for c in text):
        tokens = _tok().encode(written, add_special_tokens=False)
        by_token = guarded_matcher(compiled, terminate_without_stop_token=True)
        assert (all(by_token.accept_token(t) for t in tokens) and by_token.is_completed()) == fits


def test_xgrammar_parser_states_are_readable():
    """The guard reads xgrammar's debug text; this pins its format for the installed version."""
    compiled = _compiled(json.dumps({"type": "object", "properties": {"s": _bounded(0, 100)}, "required": ["s"]}))
    rules = length_rules(compiled)
    assert rules is not None and set(rules.parents.values()) == {(0, 100)}
    m = xgr.GrammarMatcher(compiled)
    assert m.accept_string('{"s": "ab')
    assert {r for r, _ in _states(m)} & set(rules.parents)
    guarded = guarded_matcher(compiled)
    assert guarded.accept_string('{"s": "ab') and guarded.inside() == ((2, 0, 100),)


def test_a_bound_of_any_size_is_one_rule():
    """The compile cost does not grow with the bound: one guarded rule, the same grammar size for
    9 and for a million characters, no chain."""
    sizes = set()
    for bound in (9, 1000, 10**6):
        text = str(schema_grammar(normalize(_bounded(bound, bound)).schema))
        assert f"strlen_g{bound}_{bound} ::=" in text
        assert "strlen_s" not in text and "strlen_m" not in text
        sizes.add(text.count(" ::="))
    assert len(sizes) == 1


def test_no_guard_where_every_bound_is_short():
    compiled = _compiled(json.dumps({"type": "object", "properties": {"s": _bounded(1, 8)}}))
    assert length_rules(compiled) is None
    assert isinstance(guarded_matcher(compiled), xgr.GrammarMatcher)


SCHEMA = {"type": "object", "properties": {
    "title": _bounded(0, 12),
    "body": _bounded(10, 16),
    "either": {"anyOf": [_bounded(0, 9), _bounded(20, 24)]},
    "tags": {"type": "array", "items": _bounded(9, 11), "minItems": 1, "maxItems": 3},
}, "required": ["title", "body", "either", "tags"], "additionalProperties": False}


@pytest.mark.parametrize("seed", range(6))
def test_sampled_decoding_keeps_every_bound(seed):
    """Random logits (long strings, quotes rarely drawn) under the batch's masks: every output
    completes and validates; the guard is what keeps the long strings within their bounds."""
    tok = _tok()
    compiled = _compiled(json.dumps(SCHEMA))
    states = [GrammarState(compiled, [tok.eos_token_id]) for _ in range(3)]
    batch = GrammarBatch(len(tok), capacity=3)
    gen = torch.Generator().manual_seed(seed)
    out: list[list[int]] = [[] for _ in states]
    for _ in range(600):
        live = [s if not s.is_terminated() else None for s in states]
        if not any(live):
            break
        rows = batch.fill(live)
        scores = torch.randn(len(states), len(tok), generator=gen)
        batch.apply(scores, rows)
        cdf = torch.softmax(scores * 3, dim=-1).cumsum_(dim=-1)  # inverse CDF: multinomial is slow here
        u = torch.rand(len(states), 1, generator=gen) * cdf[:, -1:]
        picks = torch.searchsorted(cdf, u, right=True).clamp_(max=len(tok) - 1)[:, 0].tolist()
        for i, s in enumerate(live):
            if s is not None:
                assert s.accept(picks[i]), "the mask allowed a token the guard refuses"
                out[i].append(picks[i])
    for i, s in enumerate(states):
        assert s.is_terminated(), f"row {i} did not finish"
        value = json.loads(tok.decode(out[i][:-1]))
        jsonschema.validate(value, SCHEMA)


TOOL = {"type": "function", "function": {"name": "write_note", "parameters": {
    "type": "object", "properties": {"title": _bounded(12, 40), "body": _bounded(0, 30)}, "required": ["title", "body"]}}}


@functools.lru_cache(maxsize=4)  # a few models and tokenizers, not one per dialect for the whole run
def _random_model(dialect_name):
    return demo.load_random(dialect_name)


@pytest.mark.parametrize("dialect_name", ["hermes", "pythonic", "kimi_k2"])
def test_the_budget_writes_a_minimum_length_on_its_way_out(dialect_name):
    """With a minLength above the chain limit, the shortest answer includes its characters, and
    every output under any budget still completes with strings within their bounds."""
    model, tok = _random_model(dialect_name)
    d = registry.get(dialect_name)
    prompt = render_prompt(d, prepare_history([{"role": "user", "content": "Write a note."}], d), [TOOL])
    for budget_extra in (0, 5, 40):
        proc = ToolCallLogitsProcessor(tok, d, [TOOL], "required", vocab_size=model.config.vocab_size)
        minimum = proc.minimum_tokens()
        assert minimum is not None and minimum >= 12 // 4
        enc = tok([prompt] * 3, return_tensors="pt", add_special_tokens=False)
        ids = model.generate(**enc, logits_processor=[proc, ExactSample(random.Random(budget_extra).randrange(99))],
                             do_sample=False, max_new_tokens=minimum + budget_extra, pad_token_id=tok.pad_token_id)
        for row in ids[:, enc["input_ids"].shape[1]:]:
            text = tok.decode(row, skip_special_tokens=False).split(tok.eos_token)[0]
            calls = parse(text, d, [TOOL]).tool_calls
            assert calls, (dialect_name, text)
            for call in calls:
                jsonschema.validate(json.loads(call["function"]["arguments"]), TOOL["function"]["parameters"])


def test_token_table_counts_characters_not_bytes():
    table = token_table(xgr.TokenizerInfo.from_huggingface(_tok(), vocab_size=len(_tok())))
    for text in ("hello", "é", " 世界", '",', "\\n"):
        for t in _tok().encode(text, add_special_tokens=False):
            data = table.vocab[t]
            chars, at, _ = scan(CLEAN, data)
            assert table.chars[t] == chars and table.closes[t] == (at >= 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(st.sampled_from(['a', 'é', '\\', '"', '\n', '😀', ' word', '\u2028']), max_size=24).map(''.join),
       low=st.sampled_from([0, 3, 10]), high=st.sampled_from([9, 14, 20]), cuts=st.lists(st.integers(1, 6), max_size=8))
def test_the_mask_allows_exactly_the_tokens_accepted(text, low, high, cuts):
    """Token boundaries anywhere (after a backslash, inside \\uXXXX): at every step the mask allows
    the next token exactly when accepting it keeps the bounds, so sampling never meets a refusal."""
    high = max(low, high)
    compiled = _compiled(json.dumps({"type": "object", "properties": {"s": _bounded(low, high)}, "required": ["s"]}))
    m = mask_agrees_with_accepting(compiled, json.dumps({"s": text}, ensure_ascii=len(cuts) % 2 == 0), cuts)
    assert (m is not None and m.is_completed()) == (low <= len(text) <= high)
