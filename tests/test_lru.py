"""Caches bounded by bytes as well as entries (constrained.lru): the LRU's invariants under any
sequence of puts and gets (hypothesis, against a plain reference model), and the grammar cache and
the schema-text cache keeping to their byte bounds with real grammars."""

from __future__ import annotations

import threading

import pytest
import xgrammar as xgr
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained import demo
from constrained import dialect as registry
from constrained.compiler import GrammarCache, held_bytes
from constrained.grammar import GrammarOptions
from constrained.lru import SizedLRU, sized_lru_cache
from constrained.types import Tool

OPS = st.lists(st.tuples(st.sampled_from(["put", "get"]), st.integers(0, 7), st.integers(0, 60)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5), st.integers(0, 100), OPS)
def test_the_lru_keeps_both_bounds_and_the_newest_entry(max_entries, max_bytes, ops):
    lru: SizedLRU[int, str] = SizedLRU(max_entries, max_bytes)
    model: list[tuple[int, str, int]] = []  # (key, value, size), least recently used first
    for i, (op, key, size) in enumerate(ops):
        if op == "get":
            found = [e for e in model if e[0] == key]
            assert lru.get(key) == (found[0][1] if found else None)
            if found:
                model.remove(found[0])
                model.append(found[0])
            continue
        value = f"v{i}"
        model = [e for e in model if e[0] != key] + [(key, value, size)]
        expected_gone = []
        while len(model) > 1 and (len(model) > max_entries or sum(e[2] for e in model) > max_bytes):
            expected_gone.append(model.pop(0)[0])
        assert lru.put(key, value, size) == expected_gone
        assert lru.get(key) == value  # the newest stays, even alone over the byte bound
        assert len(lru) == len(model) <= max_entries
        assert lru.bytes == sum(e[2] for e in model)
        assert lru.bytes <= max_bytes or len(lru) == 1
        assert lru.values() == [e[1] for e in model]


def test_bounds_are_checked():
    with pytest.raises(ValueError, match="max_entries"):
        SizedLRU(0, 10)
    with pytest.raises(ValueError, match="max_bytes"):
        SizedLRU(1, -1)


def test_the_function_cache_is_bounded_by_bytes_and_can_be_cleared():
    calls: list[str] = []

    @sized_lru_cache(max_entries=10, max_bytes=10, size=lambda arg, result: len(arg) + len(result))
    def twice(text: str) -> str:
        calls.append(text)
        return text * 2

    assert twice("ab") == "abab" and twice("ab") == "abab" and calls == ["ab"]  # 6 bytes held
    assert twice("cd") == "cdcd" and len(twice.cache) == 1  # type: ignore[attr-defined]  # 12 > 10: "ab" left
    assert twice("ab") == "abab" and calls == ["ab", "cd", "ab"]
    twice.cache_clear()  # type: ignore[attr-defined]
    assert len(twice.cache) == 0 and twice.cache.bytes == 0  # type: ignore[attr-defined]
    # callers on several threads get the same answers
    results: list[str] = []
    threads = [threading.Thread(target=lambda k=k: results.append(twice(str(k % 3)))) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(str(k % 3) * 2 for k in range(12))


def _tool(n: int) -> Tool:
    return Tool(f"tool_{n}", {"type": "object", "properties": {f"p{k}": {"type": "string", "maxLength": 5 + k} for k in range(n)}})


def test_the_grammar_cache_drops_the_oldest_grammars_past_its_byte_bound():
    """Grammars differ in what they hold by orders of magnitude, so the cache counts bytes, not just
    entries: here a bound that holds about two grammars, with 256 entries allowed."""
    d = registry.get("kimi_k2")
    tok = demo.load_tokenizer(d)
    required = GrammarOptions(tool_choice="required")
    probe = GrammarCache(tok, lazy_from_chars=None)
    size = held_bytes(probe.compile(d, [_tool(3)], required).grammar)
    assert size > 0 and probe.held() == (1, size)

    cache = GrammarCache(tok, lazy_from_chars=None, max_bytes=int(2.5 * size))
    keys = [cache.compile(d, [_tool(3 + k)], required).key for k in range(4)]
    entries, held = cache.held()
    assert entries < 4 and held <= 2.5 * size  # the bound holds, however many entries are allowed
    assert cache.cached(keys[-1]) is not None and cache.cached(keys[0]) is None  # the oldest left first
    again = cache.compile(d, [_tool(3)], required)
    assert not again.cache_hit and isinstance(again.grammar, xgr.CompiledGrammar)  # compiled anew, same as before
    # one grammar larger than the whole bound is still served, and held alone
    tiny = GrammarCache(tok, lazy_from_chars=None, max_bytes=1)
    first, second = (tiny.compile(d, [_tool(k)], required) for k in (2, 4))
    assert tiny.held() == (1, held_bytes(second.grammar)) and tiny.cached(first.key) is None


def test_a_lazy_grammar_counts_its_text_and_parser():
    d = registry.get("hermes")
    tok = demo.load_tokenizer(d)
    cache = GrammarCache(tok, lazy_from_chars=0)
    compiled = cache.compile(d, [_tool(4)], GrammarOptions(tool_choice="required")).grammar
    assert held_bytes(compiled) == compiled.memory_bytes == 11 * len(compiled.lark)


def test_the_schema_text_cache_is_bounded_by_bytes():
    from constrained import ebnf

    cache = ebnf._schema_ebnf.cache  # type: ignore[attr-defined]
    assert cache.max_bytes == 64 * 1024 * 1024 and cache.max_entries == 4096
    ebnf._schema_ebnf.cache_clear()  # type: ignore[attr-defined]
    schema = '{"type": "object", "properties": {"a": {"type": "integer"}}}'
    text = ebnf._schema_ebnf(schema)
    assert cache.bytes == len(schema) + len(text) and ebnf._schema_ebnf(schema) is text


def test_every_serial_wrapper_of_a_tokenizer_shares_one_lock_and_keeps_no_tokenizer_alive():
    import gc
    import weakref

    from constrained.tokenizer import serial

    class Tokenizer:
        def encode(self, text):
            return [len(text)]

    tok = Tokenizer()
    wrapper = serial(tok)
    assert serial(tok).lock is wrapper.lock and wrapper.encode("abc") == [3]  # one lock for every user
    lock = serial(tok).lock  # the wrapper is gone at once, as in `with serial(t).lock:`
    del wrapper
    gc.collect()
    assert serial(tok).lock is lock  # a later user still waits on it
    gone = weakref.ref(tok)
    del tok
    gc.collect()
    assert gone() is None


def test_a_process_with_many_tokenizers_keeps_the_grammar_caches_of_the_last_few(monkeypatch):
    """Each tokenizer's shared cache (TokenizerInfo, compilers, budget closers: ~160 MB on a 128K
    vocabulary) is dropped once newer ones push it out, and the tokenizer is collected with it."""
    import gc
    import weakref

    from constrained import compiler

    monkeypatch.setattr(compiler, "_CACHES", SizedLRU(2, 2**62))
    d = registry.get("hermes")
    stops = [0]
    first = demo.marker_tokenizer(d.vocab_markers, "first")
    cache = compiler.grammar_cache(first)
    assert compiler.grammar_cache(first) is cache  # shared while it is among the last used
    cache.closer(d, stops)._encode("<tool_call>")  # the closer's own encode cache, filled
    gone = weakref.ref(first)
    del first, cache
    for name in ("second", "third"):
        compiler.grammar_cache(demo.marker_tokenizer(d.vocab_markers, name))
    gc.collect()
    assert gone() is None
