"""The vLLM plug-in's logic that needs no vLLM (constrained.integrations.vllm.request, launch): runs
in the main environment, always."""

from __future__ import annotations

import json
import shlex

import pytest

from constrained import demo
from constrained import dialect as registry
from constrained.chat import jinja_chat_template, prepare_history, render_prompt
from constrained.errors import ToolSpecError
from constrained.grammar import GrammarOptions, build_ebnf
from constrained.integrations.vllm import grammar_header, header_dialect, parser_name
from constrained.integrations.vllm.request import (
    ADDITIONAL_PROPERTIES_ENV,
    marker_ids,
    parse_output,
    request_dialect,
    request_grammar,
)
from constrained.parsing import parse

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Wetter ☀", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "°F"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]
HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris, and the time?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}}]},
    {"role": "tool", "tool_call_id": "a", "name": "get_weather", "content": "sunny"},
    {"role": "tool", "tool_call_id": "b", "content": "10:00"},
    {"role": "user", "content": "And Tokyo?"},
]


def test_header_names_the_dialect_and_nothing_else_has_it():
    for name in registry.names():
        assert header_dialect(grammar_header(name) + "root ::= \"x\"\n") == name
    assert header_dialect('root ::= "x"\n') is None
    assert header_dialect("# a user's comment\nroot ::= \"x\"\n") is None
    assert parser_name("kimi_k2") == "constrained_kimi_k2"


@pytest.mark.parametrize("name", registry.names())
def test_request_grammar_is_our_grammar_for_the_request(name):
    d = registry.get(name)
    ids = marker_ids(demo.load_tokenizer(d), d)
    grammar = request_grammar(d, ids, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, messages=HISTORY, response_format=None)
    options = GrammarOptions(tool_choice="required", parallel_tool_calls=False, first_index=2)  # two calls in the history
    assert grammar == grammar_header(name) + build_ebnf(d, TOOLS, options, ids)
    # unconstrained, as in our server's contract: no tools, or tool_choice "none"
    assert request_grammar(d, ids, tools=[], tool_choice="auto", parallel_tool_calls=None, messages=HISTORY, response_format=None) is None
    assert request_grammar(d, ids, tools=TOOLS, tool_choice="none", parallel_tool_calls=None, messages=HISTORY, response_format=None) is None


def test_response_format_and_policy_are_folded_in(monkeypatch):
    d = registry.get("kimi_k2")
    ids = marker_ids(demo.load_tokenizer(d), d)
    rf = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "properties": {"answer": {"type": "string"}}}}}
    with_rf = request_grammar(d, ids, tools=TOOLS, tool_choice="auto", parallel_tool_calls=True, messages=HISTORY[:2], response_format=rf)
    assert "content_" in with_rf and "content_" not in request_grammar(d, ids, tools=TOOLS, tool_choice="auto", parallel_tool_calls=True,
                                                                       messages=HISTORY[:2], response_format=None)
    open_tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]
    forbid = request_grammar(d, ids, tools=open_tools, tool_choice="required", parallel_tool_calls=True, messages=[], response_format=None)
    monkeypatch.setenv(ADDITIONAL_PROPERTIES_ENV, "schema")
    allow = request_grammar(d, ids, tools=open_tools, tool_choice="required", parallel_tool_calls=True, messages=[], response_format=None)
    assert allow != forbid
    monkeypatch.setenv(ADDITIONAL_PROPERTIES_ENV, "sometimes")
    with pytest.raises(ToolSpecError, match=ADDITIONAL_PROPERTIES_ENV):
        request_grammar(d, ids, tools=open_tools, tool_choice="required", parallel_tool_calls=True, messages=[], response_format=None)


def test_bad_requests_name_what_and_where():
    d = registry.get("hermes")
    with pytest.raises(ToolSpecError, match="tool name 'bad name!'") as err:
        request_grammar(d, {}, tools=[{"type": "function", "function": {"name": "bad name!"}}], tool_choice="auto", parallel_tool_calls=None,
                        messages=[], response_format=None)
    assert err.value.param == "tools[0].function.name"
    with pytest.raises(ToolSpecError, match="not in tools"):
        request_grammar(d, {}, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}, parallel_tool_calls=None, messages=[],
                        response_format=None)


def test_which_dialect_serves_a_request():
    kimi_tok = demo.load_tokenizer("kimi_k2")
    assert request_dialect("hermes", kimi_tok, None).name == "hermes"  # constrained_hermes: fixed
    assert request_dialect("hermes", kimi_tok, {"constrained_dialect": "hermes"}).name == "hermes"
    with pytest.raises(ToolSpecError, match="constrained_hermes"):
        request_dialect("hermes", kimi_tok, {"constrained_dialect": "kimi_k2"})
    assert request_dialect(None, kimi_tok, {"constrained_dialect": "pythonic"}).name == "pythonic"  # `constrained`: per request
    # else detected from the tokenizer: the demo vocabulary is DeepSeek's, which holds DeepSeek's own
    # tool markers too, so without a chat template Kimi's markers do not single it out: refused
    with pytest.raises(ToolSpecError, match="kimi_k2"):
        request_dialect(None, kimi_tok, None)
    with pytest.raises(ToolSpecError, match="known dialects"):
        request_dialect(None, kimi_tok, {"constrained_dialect": "klingon"})
    with pytest.raises(ToolSpecError, match="constrained_dialect"):
        request_dialect(None, demo.load_tokenizer("pythonic"), None)  # nothing to detect a Python call list by


def test_output_cut_inside_a_call_reports_what_a_stream_showed():
    d = registry.get("kimi_k2")
    done = ("<|tool_calls_section_begin|><|tool_call_begin|>functions.get_time:0<|tool_call_argument_begin|>{\"tz\": \"CET\"}<|tool_call_end|>"
            "<|tool_calls_section_end|>")
    assert parse_output(done, d, 0).tool_calls == parse(done, d).tool_calls
    cut = done[: done.index("<|tool_calls_section_end|>")] + "<|tool_call_begin|>functions.get_time:1<|tool_call_argument_begin|>{\"tz\": \"UT"
    result = parse_output(cut, d, 0)
    assert [c["id"] for c in result.tool_calls] == ["functions.get_time:0"]
    assert result.content is None  # never the unfinished call's raw text (parse() would make it content)
    assert "functions.get_time:1" in (parse(cut, d).content or "")


PLOT = {"type": "function", "function": {"name": "plot", "parameters": {"type": "object", "properties": {
    "points": {"type": "array", "items": {"type": "integer"}}, "style": {"type": "object"}, "log": {"type": "boolean"}, "scale": {"type": "number"},
    "label": {"type": ["string", "null"]}}}}}
TYPED_HISTORY = [
    {"role": "user", "content": "Plot it."},
    {"role": "assistant", "content": "Plotting.", "tool_calls": [{"id": "p", "type": "function", "function": {"name": "plot", "arguments": json.dumps(
        {"points": [1, -2], "style": {"tag": "<b>", "w": 1.5}, "log": False, "scale": 0.25, "label": None}, ensure_ascii=False)}}]},
    {"role": "tool", "tool_call_id": "p", "content": "done"},
]


@pytest.mark.parametrize("name", registry.names())
def test_jinja_template_renders_what_render_prompt_renders(name):
    """The demo checkpoint's chat template (what vLLM renders) and our server's prompt agree, for
    every encoding: strings, and numbers, booleans, null, arrays and objects (a `<` inside)."""
    d = registry.get(name)
    for history, tools in ((HISTORY, TOOLS), (HISTORY, None), (TYPED_HISTORY, [PLOT])):
        history = prepare_history(history, d)
        ours = render_prompt(d, history, tools)
        theirs = demo.load_tokenizer(d).apply_chat_template(history.messages, tools=tools, tokenize=False, add_generation_prompt=True,
                                                            chat_template=jinja_chat_template(d))
        assert theirs == ours


def test_serve_engine_vllm_command(capsys):
    """`constrained serve --engine vllm`: our options become vLLM's, vLLM's own pass after --."""
    from constrained.cli import main

    assert main(["serve", "--engine", "vllm", "--print-command", "--vllm-python", "/opt/vllm/bin/python", "--dialect", "hermes", "--port", "8123",
                 "--api-key", "sk-x", "--max-batch", "8", "--seed", "3", "--additional-properties", "schema", "--demo-nudge",
                 "--lazy-from", "5000", "--", "--tensor-parallel-size", "2"]) == 0
    words = shlex.split(capsys.readouterr().out)
    env = dict(w.split("=", 1) for w in words[: words.index("/opt/vllm/bin/python")])
    args = words[words.index("/opt/vllm/bin/python") + 1 :]
    assert env == {"VLLM_CPU_KVCACHE_SPACE": "1", "CONSTRAINED_DEMO_NUDGE": "hermes", ADDITIONAL_PROPERTIES_ENV: "schema", "CONSTRAINED_LAZY_FROM": "5000"}
    assert args[:4] == ["-m", "vllm.entrypoints.cli.main", "serve", args[3]] and "vllm-demo-hermes" in args[3]
    pairs = {a: b for a, b in zip(args, args[1:]) if a.startswith("--")}
    assert pairs["--tool-call-parser"] == pairs["--reasoning-parser"] == "constrained_hermes"
    assert "--enable-auto-tool-choice" in args and pairs["--port"] == "8123" and pairs["--api-key"] == "sk-x"
    assert pairs["--max-num-seqs"] == "8" and pairs["--seed"] == "3" and pairs["--served-model-name"] == "constrained-demo-hermes"
    at = args.index("--logits-processors")  # the nudge, then the budget (every output completes within max_tokens)
    assert args[at + 1: at + 3] == ["constrained.integrations.vllm.nudge:DemoNudge", "constrained.integrations.vllm.budget:ToolCallBudget"]
    assert args[-2:] == ["--tensor-parallel-size", "2"]
    assert main(["serve", "--engine", "vllm", "--vllm-python", "/x", "--no-jump-forward", "--max-queue", "3", "--grammar-cache-mb", "8"]) == 2
    assert "--max-queue, --no-jump-forward, --grammar-cache-mb: not available with --engine vllm" in capsys.readouterr().err
    assert main(["serve", "--", "--tensor-parallel-size", "2"]) == 2
    assert "for --engine vllm" in capsys.readouterr().err


def test_the_engines_route_for_large_grammars_follows_its_environment(monkeypatch):
    """CONSTRAINED_LAZY_FROM (set by `constrained serve --engine vllm --lazy-from`) picks the route
    of our grammars in vLLM's engine and budget processor alike; unset, the library's threshold."""
    from constrained.integrations.vllm import LAZY_FROM_ENV, lazy_route

    monkeypatch.delenv(LAZY_FROM_ENV, raising=False)
    assert lazy_route("x" * 10**6) is None
    for setting, short, long_ in (("0", True, True), ("-1", False, False), ("100", False, True)):
        monkeypatch.setenv(LAZY_FROM_ENV, setting)
        assert (lazy_route("x" * 99), lazy_route("x" * 100)) == (short, long_), setting
    monkeypatch.setenv(LAZY_FROM_ENV, "lots")  # not a number: the library's threshold, not an error
    assert lazy_route("x" * 10**6) is None
