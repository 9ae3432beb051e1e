"""Every registered dialect, on the corpus's example arguments: the renderer's text is accepted by
the grammar (markers as the special tokens) and parses back to the same calls, with text before
them where the dialect allows text and calls together, and the stream cut at every token boundary
joins to the whole-text parse. Plus the limits a format sets: one call per turn, calls or text."""

from __future__ import annotations

import json

import pytest
from corpus import CORPUS, tools_for
from helpers import check_roundtrip, check_stream_matches
from test_grammar import accepts

from constrained import GrammarOptions, parse
from constrained import dialect as registry
from constrained.compiler import grammar_cache
from constrained.demo import load_tokenizer


def examples(name: str) -> list[tuple[dict, dict]]:
    """(tool, arguments) the dialect can write: its tools, and only declared arguments where the
    encoding writes declared properties only (python, xml)."""
    d = registry.get(name)
    out = []
    for tool, args in CORPUS:
        if tool not in tools_for(name):
            continue
        props = (tool["function"].get("parameters") or {}).get("properties", {})
        if d.codec.name != "json":
            args = {k: v for k, v in args.items() if k in props}
        out.append((tool, args))
    return out


@pytest.mark.parametrize("name", registry.names())
def test_render_is_accepted_parses_back_and_streams(name):
    d = registry.get(name)
    tok = load_tokenizer(name)
    for tool, args in examples(name):
        calls = [{"function": {"name": tool["function"]["name"], "arguments": json.dumps(args)}}] * (d.max_calls or 2)
        check_roundtrip(name, tok, [tool], calls, first_index=3)  # the grammar accepts it; it parses back
        text = ("Let me check. " if not d.calls_are_whole_output else "") + d.render_calls(calls, 3, [tool])
        whole = parse(text, d, [tool], first_index=3)
        assert len(whole.tool_calls) == len(calls) and whole.violations == [], (text, whole)
        assert whole.content == (None if d.calls_are_whole_output else "Let me check.")
        check_stream_matches(name, tok, text, whole, 3, [tool])
    if not d.calls_are_whole_output:  # text, then the calls, in auto mode
        tool, args = examples(name)[0]
        text = "Let me check. " + d.render_calls([{"function": {"name": tool["function"]["name"], "arguments": args}}], 0, [tool])
        assert accepts(name, [tool], text, tool_choice="auto")


@pytest.mark.parametrize("name", [n for n in registry.names() if registry.get(n).max_calls == 1])
def test_one_call_per_turn_whatever_is_asked(name):
    d = registry.get(name)
    tool, args = examples(name)[0]
    one = d.render_calls([{"function": {"name": tool["function"]["name"], "arguments": args}}], 0, [tool])
    assert accepts(name, [tool], one, tool_choice="required", parallel_tool_calls=True)
    two = one + d.call_separator + one
    assert not accepts(name, [tool], two, tool_choice="required", parallel_tool_calls=True, reasoning=False)


@pytest.mark.parametrize("name", [n for n in registry.names() if registry.get(n).calls_are_whole_output])
def test_calls_or_text_not_both_where_calls_are_the_whole_output(name):
    d = registry.get(name)
    tool, args = examples(name)[0]
    calls = d.render_calls([{"function": {"name": tool["function"]["name"], "arguments": args}}], 0, [tool])
    assert accepts(name, [tool], calls, tool_choice="auto")
    # text may look like calls only where the parsers take a call list as the whole output alone
    # (pythonic `[`): then it is text, for us and for vLLM
    mixed = "Let me check. " + calls
    assert not accepts(name, [tool], mixed, tool_choice="auto") or (len(d.trigger) == 1 and parse(mixed, d).tool_calls == [])
    text = (d.content_wrapper[0] if d.content_wrapper else "") + "Just text."
    assert accepts(name, [tool], text, tool_choice="auto")
    assert parse(text, d).content == "Just text."


def test_every_marker_of_every_dialect_is_one_token_of_its_demo_tokenizer():
    for name in registry.names():
        d = registry.get(name)
        tok = load_tokenizer(name)
        ids = grammar_cache(tok)._dialect(d)[0]
        assert set(ids) == set(d.special_tokens), name
        for marker in d.special_tokens:
            assert tok.encode(marker, add_special_tokens=False) == [ids[marker]], (name, marker)


def test_grammar_options_cannot_exceed_a_formats_own_limit():
    d = registry.get("openai")
    tok = load_tokenizer("openai")
    ebnf = grammar_cache(tok).ebnf(d, [CORPUS[0][0]], GrammarOptions("required", True, max_calls=8))
    assert "\ncalls ::= call\n" in ebnf  # one call: no repetition of calls at all
