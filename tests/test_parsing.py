"""Whole-text and streaming parsing: the seeds' examples, malformed text, hostile text."""

from __future__ import annotations

import json
import keyword

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from constrained import StreamingParser, parse
from constrained import dialect as registry

# -- (d) the seeds' example outputs parse as the seeds say ----------------------------------------


def test_seed_000_kimi_output():
    # TensorRT-LLM's example output (the trailing "user" is the next turn's role header in the seed)
    raw = (
        "<|tool_calls_section_begin|>\n<|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        '{"location": "shanghai"}<|tool_call_end|>\n<|tool_calls_section_end|>'
    )
    result = parse(raw, "kimi_k2")
    assert result.tool_calls == [
        {"id": "functions.get_weather:0", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "shanghai"}'}}
    ]
    assert result.content is None


def test_seed_000_pythonic_output():
    result = parse("[get_weather(location='beijing')]", "pythonic")
    assert [c["function"]["name"] for c in result.tool_calls] == ["get_weather"]
    assert json.loads(result.tool_calls[0]["function"]["arguments"]) == {"location": "beijing"}
    assert result.content is None


def test_seed_001_reference_parser_agrees():
    """Seed 001's extract_tool_call_info and our parser read the same calls."""
    import re

    def extract_tool_call_info(tool_call_rsp: str):  # verbatim logic from the seed
        if "<|tool_calls_section_begin|>" not in tool_call_rsp:
            return []
        pattern = r"<\|tool_calls_section_begin\|>(.*?)<\|tool_calls_section_end\|>"
        tool_calls_sections = re.findall(pattern, tool_call_rsp, re.DOTALL)
        func_call_pattern = r"<\|tool_call_begin\|>\s*(?P<tool_call_id>[\w\.]+:\d+)\s*<\|tool_call_argument_begin\|>\s*(?P<function_arguments>.*?)\s*<\|tool_call_end\|>"
        tool_calls = []
        for match in re.findall(func_call_pattern, tool_calls_sections[0], re.DOTALL):
            function_id, function_args = match
            function_name = function_id.split(".")[1].split(":")[0]
            tool_calls.append({"id": function_id, "type": "function", "function": {"name": function_name, "arguments": function_args}})
        return tool_calls

    d = registry.get("kimi_k2")
    calls = [{"function": {"name": "get_weather", "arguments": {"city": "Beijing"}}}, {"function": {"name": "get_time", "arguments": {}}}]
    raw = "Let me check." + d.render_calls(calls, 2)
    assert parse(raw, d).tool_calls == extract_tool_call_info(raw)
    assert parse(raw, d).content == "Let me check."


def test_seed_003_minimax_output():
    raw = (
        "<think>\nOkay, I will search for the OpenAI and Gemini latest release.\n</think>\n<tool_calls>\n"
        '{"name": "search_web", "arguments": {"query_tag": ["technology", "events"], "query_list": ["\\"OpenAI\\" \\"latest\\" \\"release\\""]}}\n'
        '{"name": "search_web", "arguments": {"query_tag": ["technology", "events"], "query_list": ["\\"Gemini\\" \\"latest\\" \\"release\\""]}}\n'
        "</tool_calls>"
    )
    result = parse(raw, "minimax_m1")
    assert result.reasoning == "Okay, I will search for the OpenAI and Gemini latest release."
    assert result.content is None
    args = [json.loads(c["function"]["arguments"]) for c in result.tool_calls]
    assert args == [
        {"query_tag": ["technology", "events"], "query_list": ['"OpenAI" "latest" "release"']},
        {"query_tag": ["technology", "events"], "query_list": ['"Gemini" "latest" "release"']},
    ]
    assert all(c["id"].startswith("call_") for c in result.tool_calls)
    assert len({c["id"] for c in result.tool_calls}) == 2


# -- (e) malformed text: the documented result, never an exception --------------------------------


def test_unterminated_section_keeps_complete_calls():
    raw = '<tool_calls>\n{"name": "f", "arguments": {"a": 1}}\n'
    result = parse(raw, "minimax_m1")
    assert [c["function"]["arguments"] for c in result.tool_calls] == ['{"a": 1}']


def test_call_cut_mid_arguments_stays_content():
    raw = 'Hi <|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{"a": '
    result = parse(raw, "kimi_k2")
    assert result.tool_calls == []
    assert result.content == raw.strip()  # content is trimmed; nothing else is lost


def test_calls_inside_think_are_reasoning():
    raw = '<think>I could do <tool_calls>\n{"name": "f", "arguments": {}}\n</tool_calls> but I will not</think>Done.'
    result = parse(raw, "minimax_m1")
    assert result.tool_calls == []
    assert "<tool_calls>" in result.reasoning
    assert result.content == "Done."


def test_calls_inside_unterminated_think_are_not_calls():
    raw = '<think>maybe <tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    result = parse(raw, "hermes")
    assert result.tool_calls == [] and result.content is None
    assert result.reasoning.startswith("maybe")


def test_kimi_section_ends_reasoning():
    raw = "<think>need weather<|tool_calls_section_begin|><|tool_call_begin|>functions.w:0<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>"
    result = parse(raw, "kimi_k2")
    assert result.reasoning == "need weather"
    assert [c["id"] for c in result.tool_calls] == ["functions.w:0"]


def test_pretty_printed_m1_json_is_not_a_call():
    """vLLM's M1 parser reads one JSON object per line: pretty-printed JSON yields no call."""
    raw = '<tool_calls>\n{\n  "name": "f",\n  "arguments": {"a": 1}\n}\n</tool_calls>'
    result = parse(raw, "minimax_m1")
    # our parser tolerates whitespace between structural characters, so this still reads as the
    # call the model meant; the grammar never produces it (see test_grammar)
    assert [c["function"]["name"] for c in result.tool_calls] == ["f"]


def test_garbage_inside_section_becomes_content():
    raw = "ok <tool_call>\nnot json at all\n</tool_call>"
    result = parse(raw, "hermes")
    assert result.tool_calls == [] and result.content == raw


def test_pythonic_is_a_call_list_only_when_it_is_the_whole_output():
    assert parse("[f(a=1)] and more", "pythonic").tool_calls == []
    assert parse("[f(a=1)] and more", "pythonic").content == "[f(a=1)] and more"
    assert parse("I think [f(a=1)]", "pythonic").tool_calls == []
    assert len(parse("[f(a=1), g()]", "pythonic").tool_calls) == 2


@pytest.mark.parametrize(
    "raw",
    [
        "[f(a=__import__('os').system('echo pwned'))]",  # never eval: not a literal, so not a call
        "[f(a=open('/etc/passwd').read())]",
        "[f(**{'a': 1})]",
        "[f(1, 2)]",
        "[f(a={1, 2})]",  # a set is not JSON
        "[f(a=1e999)]",  # inf is not JSON
    ],
)
def test_pythonic_rejects_non_literals(raw):
    result = parse(raw, "pythonic")
    assert result.tool_calls == [] and result.content == raw.strip()


def test_names_with_dash_and_dot():
    d = registry.get("kimi_k2")
    raw = d.render_calls([{"function": {"name": "github.create-issue", "arguments": {"t": "x"}}}], 7)
    assert parse(raw, d).tool_calls[0]["id"] == "functions.github.create-issue:7"
    assert parse(raw, d).tool_calls[0]["function"]["name"] == "github.create-issue"


def test_violations_reported_when_tools_given():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]
    result = parse('<tool_call>\n{"name": "f", "arguments": {"a": "x"}}\n</tool_call>', "hermes", tools=tools)
    assert len(result.violations) == 1 and "tool_calls[0] (f)" in result.violations[0]


# -- streaming ---------------------------------------------------------------------------------------


def _stream(dialect, text, step):
    p = StreamingParser(dialect)
    deltas = []
    for i in range(0, len(text), step):
        deltas += p.feed(text[i : i + step])
    return p, deltas + p.finish()


@pytest.mark.parametrize("name", registry.names())
def test_stream_never_leaks_partial_markers(name):
    d = registry.get(name)
    calls = [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "n": [1, {"x": "}"}]}}}, {"function": {"name": "g", "arguments": {}}}]
    text = ("Checking. " if not d.calls_are_whole_output else "") + d.render_calls(calls)
    whole = parse(text, d)
    for step in (1, 2, 3, 7):
        p, deltas = _stream(d, text, step)
        content = "".join(x.get("content", "") for x in deltas)
        assert content == (whole.content or "")
        assert "<" not in content and "[" not in content  # no marker or its prefix leaks into content
        assert [c["function"]["arguments"] for c in p.tool_calls()] == [c["function"]["arguments"] for c in whole.tool_calls]


@settings(max_examples=60, deadline=None)
@given(
    args=st.dictionaries(
        # names every dialect can write (a Python keyword such as `as` is no keyword argument)
        st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(lambda k: not keyword.iskeyword(k)),
        st.recursive(
            st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
            max_leaves=6,
        ),
        max_size=4,
    ),
    name=st.sampled_from(registry.names()),
    step=st.integers(1, 9),
)
def test_render_parse_stream_roundtrip(args, name, step):
    """For any JSON arguments: render -> parse gives them back, and streaming agrees with whole."""
    d = registry.get(name)
    text = d.render_calls([{"function": {"name": "tool_x", "arguments": args}}])
    whole = parse(text, d)
    assert len(whole.tool_calls) == 1
    assert json.loads(whole.tool_calls[0]["function"]["arguments"]) == args
    p, _ = _stream(d, text, step)
    assert [c["function"]["arguments"] for c in p.tool_calls()] == [whole.tool_calls[0]["function"]["arguments"]]
