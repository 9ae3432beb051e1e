"""The XML-parameters codec under hostile strings: `</parameter>`, `<`, newlines, unicode, `null`.

Three promises, as properties over generated strings:
- the renderer writes what the parser reads back, or refuses (a string holding the closing tag
  or the opening of another argument: these formats have no escape) and never writes it wrong;
- the grammar lets a raw value through exactly when the format can carry it (never one that
  spells the closing tag), and
- the parser reads back every value the grammar lets through, typed by the schema: a string
  stays a string even where the schema also admits null, numbers or objects.
"""

from __future__ import annotations

import json
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained import GrammarOptions, ToolSpecError, parse
from constrained import dialect as registry
from constrained.codecs.xml import XmlArguments, read_value, schema_types
from constrained.compiler import grammar_cache
from constrained.demo import load_tokenizer
from constrained.guards import matcher as guarded_matcher

XML_DIALECTS = [n for n in registry.names() if isinstance(registry.get(n).codec, XmlArguments)]
# one of each kind: newline framing (Qwen), markers that are special tokens (GLM), per-value
# string flag (DSML), attribute quoting (MiniMax)
GRAMMAR_DIALECTS = ["qwen3_coder", "glm47", "deepseek_v32", "minimax_m2"]
FRAGMENTS = ["</parameter>", "<parameter=", "</arg_value>", "<arg_key>", "</｜DSML｜parameter>", "<｜DSML｜parameter", "</",
             "<", ">", "=", '"', "\n", "\n\n", " ", "\t", "null", "NULL", "Null", "nul", "true", "0", "1", "-", "{", "[",
             "é", "東京", "☀️", "\u2028", "\\", "x"]
# raw text cannot hold the byte that marks special tokens in the grammar's vocabulary (\x01)
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(st.characters(exclude_characters="\x01", exclude_categories=("Cs",)),
                                                                       max_size=3)), max_size=6).map("".join)

STRING = {"type": "string"}
NULLABLE = {"type": ["string", "null"]}
ANY: dict = {}


def tool(schema):
    return [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"s": schema}, "required": ["s"]}}}]


def writable(d, s: str) -> bool:
    return not any(x in s for x in d.codec.value_excludes)


@pytest.mark.parametrize("name", XML_DIALECTS)
@settings(max_examples=80, deadline=None)
@given(s=hostile)
def test_renderer_writes_what_the_parser_reads_or_refuses(name, s):
    d = registry.get(name)
    for schema in (STRING, NULLABLE, ANY):
        tools = tool(schema)
        try:
            text = d.render_calls([{"function": {"name": "f", "arguments": {"s": s}}}], tools=tools)
        except ToolSpecError:
            # refused only for a string the format cannot carry: the closing tag inside, or (where the
            # schema admits other types and no flag says "string") a text that reads as another type
            assert not writable(d, s) or (not d.codec.flagged and read_value(s, schema_types(schema, {})) != s), (s, schema)
            continue
        assert writable(d, s)
        back = parse("Sure. " + text, d, tools)
        assert [json.loads(c["function"]["arguments"]) for c in back.tool_calls] == [{"s": s}], (text, schema)


@cache
def _grammar(name: str, schema_json: str):
    tok = load_tokenizer(name)
    d = registry.get(name)
    compiled = grammar_cache(tok).compile(d, tool(json.loads(schema_json)), GrammarOptions("required", False, reasoning=False)).grammar
    return tok, compiled


def accepts_raw(name: str, schema: dict, s: str) -> tuple[bool, str]:
    """Does the grammar accept a call whose argument is `s` written raw? -> (accepted, the text)."""
    d = registry.get(name)
    tok, compiled = _grammar(name, json.dumps(schema))
    marker = "\x00VALUE\x00"
    frame = d.render_calls([{"function": {"name": "f", "arguments": {"s": marker}}}], tools=tool(STRING))
    before, after = frame.split(marker)
    ids = (tok.encode(before, add_special_tokens=False) + tok.encode(s, add_special_tokens=False, split_special_tokens=True)
           + tok.encode(after, add_special_tokens=False))
    matcher = guarded_matcher(compiled, override_stop_tokens=[tok.eos_token_id])
    return all(matcher.accept_token(t) for t in ids) and matcher.is_completed(), before + s + after


@pytest.mark.parametrize("name", GRAMMAR_DIALECTS)
@settings(max_examples=60, deadline=None)
@given(s=hostile)
def test_grammar_lets_a_raw_string_through_exactly_when_it_reads_back(name, s):
    d = registry.get(name)
    ok, text = accepts_raw(name, STRING, s)
    assert ok == writable(d, s), (s, text)  # never the closing tag; anything else goes
    if ok:
        assert json.loads(parse(text, d, tool(STRING)).tool_calls[0]["function"]["arguments"]) == {"s": s}


@pytest.mark.parametrize("name", GRAMMAR_DIALECTS)
@settings(max_examples=60, deadline=None)
@given(s=hostile)
def test_strings_in_unions_never_read_as_another_type(name, s):
    d = registry.get(name)
    for schema in (NULLABLE, ANY):
        ok, text = accepts_raw(name, schema, s)
        if ok:  # the text is the raw string, or exactly the JSON of a value of another admitted type
            value = json.loads(parse(text, d, tool(schema)).tool_calls[0]["function"]["arguments"])["s"]
            assert value == s or (not isinstance(value, str) and json.dumps(value, ensure_ascii=False) == s), (schema, text, value)
    if writable(d, s) and s.lower() != "null":
        assert accepts_raw(name, NULLABLE, s)[0], s  # a nullable string refuses only "null"
    assert not accepts_raw(name, NULLABLE, "nUlL")[0]


@pytest.mark.parametrize("name", GRAMMAR_DIALECTS)
def test_json_values_cannot_spell_a_tag(name):
    """Inside a JSON value, `<` is written \\u003c: a nested string cannot close the element."""
    d = registry.get(name)
    tools = tool({"type": "object", "properties": {"t": STRING}, "required": ["t"]})
    text = d.render_calls([{"function": {"name": "f", "arguments": {"s": {"t": "</parameter><"}}}}], tools=tools)
    assert "\\u003c/parameter>" in text and "</parameter><" not in text
    tok, compiled = _grammar(name, json.dumps(tools[0]["function"]["parameters"]["properties"]["s"]))
    assert json.loads(parse(text, d, tools).tool_calls[0]["function"]["arguments"]) == {"s": {"t": "</parameter><"}}
    spelled = text.replace("\\u003c", "<")
    matcher = guarded_matcher(compiled, override_stop_tokens=[tok.eos_token_id])
    assert not (all(matcher.accept_token(t) for t in tok.encode(spelled, add_special_tokens=False)) and matcher.is_completed())
