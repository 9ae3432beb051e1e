"""Deep objects hoisted into $defs before xgrammar's conversion (constrained.schema.hoist): the
grammar is shorter and its language the same. Both grammars, with and without hoisting, walk the
same random outputs and their masks are compared at every step."""

from __future__ import annotations

import random

import numpy as np
import pytest
import xgrammar as xgr
from corpus import CORPUS
from helpers import allowed

from constrained import demo, ebnf
from constrained import dialect as registry
from constrained.compiler import GrammarCache
from constrained.decoding import GrammarState
from constrained.grammar import GrammarOptions
from constrained.schema import hoist
from constrained.types import Tool

HERMES = registry.get("hermes")
DEPTH = hoist.HOIST_FROM_DEPTH
REQUIRED = GrammarOptions(tool_choice="required")


def _leaf(k: int) -> dict:
    return [{"type": "string", "maxLength": 12}, {"type": "integer", "minimum": 0}, {"enum": ["a", "b"]}, {"type": "boolean"}][k % 4]


def _deep(depth: int, width: int, k: int = 0) -> dict:
    if depth == 0:
        return _leaf(k)
    props = {f"p{i}": _deep(depth - 1, width, k + i) for i in range(width)}
    return {"type": "object", "properties": props, "required": ["p0"]}


SAME_KEYS_OTHER_ORDER = {"type": "object", "properties": {
    "a": {"type": "object", "properties": {"x": {"type": "object", "properties": {"deep": {"type": "object", "properties": {"u": {"type": "integer"}, "v": {"type": "string"}}, "required": ["u", "v"]}}}}},
    "b": {"type": "object", "properties": {"x": {"type": "object", "properties": {"deep": {"type": "object", "properties": {"v": {"type": "string"}, "u": {"type": "integer"}}, "required": ["u", "v"]}}}}}},
    "required": ["a", "b"]}
RECURSIVE = {"type": "object", "$defs": {"node": {"type": "object", "properties": {
    "name": {"type": "string"}, "meta": {"type": "object", "properties": {"info": {"type": "object", "properties": {"tags": {"type": "object", "properties": {"t": {"type": "string"}}}}}}},
    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}}, "required": ["name"]}},
    "properties": {"root": {"$ref": "#/$defs/node"}}, "required": ["root"]}
SCHEMAS = [("deep", _deep(5, 2)), ("same_keys_other_order", SAME_KEYS_OTHER_ORDER), ("recursive", RECURSIVE)] + [
    (t["function"]["name"], t["function"]["parameters"]) for t, _ in CORPUS if t["function"].get("parameters")]


@pytest.fixture(scope="module")
def caches():
    tok = demo.load_tokenizer(HERMES)
    return tok, GrammarCache(tok, lazy_from_chars=None)


def _grammar(cache: GrammarCache, schema: dict, hoisting: bool, monkeypatch) -> tuple[str, xgr.CompiledGrammar]:
    monkeypatch.setattr(hoist, "HOIST_FROM_DEPTH", DEPTH if hoisting else 10**9)
    ebnf._schema_ebnf.cache_clear()  # the conversion is cached by the schema's text
    text = cache.ebnf(HERMES, [Tool("t", schema)], REQUIRED)
    return text, cache.compile(HERMES, [Tool("t", schema)], REQUIRED, ebnf=text).grammar


@pytest.mark.parametrize(("name", "schema"), SCHEMAS, ids=[n for n, _ in SCHEMAS])
def test_hoisting_keeps_the_language(caches, monkeypatch, name, schema):
    tok, cache = caches
    plain_text, plain = _grammar(cache, schema, False, monkeypatch)
    hoisted_text, hoisted = _grammar(cache, schema, True, monkeypatch)
    if name in ("deep", "same_keys_other_order", "recursive"):
        assert hoist.HOISTED in hoisted_text and hoist.HOISTED not in plain_text  # these do hoist
    stops = [tok.convert_tokens_to_ids(t) for t in HERMES.chat.stop_tokens]
    n = cache.vocab_size
    bitmask = xgr.allocate_token_bitmask(1, n)
    for seed in range(3):
        a, b = GrammarState(plain, stops), GrammarState(hoisted, stops)
        rng = random.Random(seed)
        for step in range(80):
            assert a.is_terminated() == b.is_terminated()
            if a.is_terminated():
                break
            x, y = allowed(a, n, bitmask), allowed(b, n, bitmask)
            assert (x == y).all(), (name, seed, step, [tok.decode([int(t)]) for t in np.flatnonzero(x != y)[:8]])
            token = int(rng.choice(np.flatnonzero(x)))
            assert a.accept(token) and b.accept(token)


def test_a_deep_schema_is_written_shorter(caches, monkeypatch):
    _, cache = caches
    schema = _deep(7, 2)
    plain_text, _ = _grammar(cache, schema, False, monkeypatch)
    hoisted_text, _ = _grammar(cache, schema, True, monkeypatch)
    assert len(hoisted_text) < len(plain_text) / 2


def _accepts(tok, grammar, arguments: str) -> bool:
    state = GrammarState(grammar, [tok.convert_tokens_to_ids(t) for t in HERMES.chat.stop_tokens])
    text = '<tool_call>\n{"name": "t", "arguments": ' + arguments + "}\n</tool_call>"
    return all(state.accept(t) for t in tok.encode(text, add_special_tokens=False)) and state.is_completed()


@pytest.mark.parametrize(("schema", "arguments", "accepted"), [
    # the required properties come first, in `required`'s order, however `properties` lists them
    (SAME_KEYS_OTHER_ORDER, '{"a": {"x": {"deep": {"u": 1, "v": "s"}}}, "b": {"x": {"deep": {"u": 1, "v": "s"}}}}', True),
    (SAME_KEYS_OTHER_ORDER, '{"a": {"x": {"deep": {"u": 1, "v": "s"}}}, "b": {"x": {"deep": {"v": "s", "u": 1}}}}', False),
    (RECURSIVE, '{"root": {"name": "a", "meta": {"info": {"tags": {"t": "x"}}}, "children": [{"name": "b", "children": []}]}}', True),
    (RECURSIVE, '{"root": {"name": "a", "children": [{"name": "b", "meta": {"info": {"tags": {"t": 1}}}}]}}', False),
    (_deep(5, 2), '{"p0": {"p0": {"p0": {"p0": {"p0": "abc", "p1": 3}}}}}', True),
    (_deep(5, 2), '{"p0": {"p0": {"p0": {"p0": {"p0": "abc", "p1": "3"}}}}}', False),
])
def test_deep_instances_are_accepted_and_refused_alike(caches, monkeypatch, schema, arguments, accepted):
    tok, cache = caches
    plain = _grammar(cache, schema, False, monkeypatch)[1]
    hoisted = _grammar(cache, schema, True, monkeypatch)[1]
    assert _accepts(tok, plain, arguments) is accepted
    assert _accepts(tok, hoisted, arguments) is accepted
