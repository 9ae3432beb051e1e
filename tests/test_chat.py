"""History -> prompt: Kimi ids rewritten, tool results mapped by the id the client sent."""

import json

import pytest

from constrained import ToolSpecError
from constrained import dialect as registry
from constrained.chat import prepare_history, render_prompt

HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Tokyo?"}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_def", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'}},
    ]},
    {"role": "tool", "tool_call_id": "call_def", "name": "get_weather", "content": "rain"},
    {"role": "tool", "tool_call_id": "call_abc", "name": "get_weather", "content": "sun"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_x", "type": "function", "function": {"name": "get-time.now", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_x", "content": [{"name": "get-time.now", "type": "text", "text": "12:00"}]},
]


def test_kimi_history_ids_become_functions_name_idx():
    h = prepare_history(HISTORY, registry.get("kimi_k2"))
    assert h.calls_so_far == 3
    assert [c["id"] for m in h.messages if m.get("tool_calls") for c in m["tool_calls"]] == [
        "functions.get_weather:0", "functions.get_weather:1", "functions.get-time.now:2"]
    # tool results follow the id the client sent, not their order
    assert [m["tool_call_id"] for m in h.messages if m["role"] == "tool"] == [
        "functions.get_weather:1", "functions.get_weather:0", "functions.get-time.now:2"]


def test_other_dialects_keep_client_ids():
    h = prepare_history(HISTORY, registry.get("hermes"))
    assert [m["tool_call_id"] for m in h.messages if m["role"] == "tool"] == ["call_def", "call_abc", "call_x"]


def test_prompt_renders_calls_in_the_dialect_and_m1_tool_parts():
    d = registry.get("kimi_k2")
    prompt = render_prompt(d, prepare_history(HISTORY, d), [{"type": "function", "function": {"name": "get_weather"}}])
    assert "functions.get_weather:1<|tool_call_argument_begin|>" + json.dumps({"city": "Tokyo"}) in prompt
    assert "tool name: get-time.now\ntool result: 12:00" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert '"name": "get_weather"' in prompt.split("<|im_end|>")[0]  # tools in the system prompt


@pytest.mark.parametrize("bad, param", [
    ([{"content": "no role"}], "messages[0]"),
    ([{"role": "wizard", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "messages[0].content[0]"),
    ([{"role": "assistant", "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{not json"}}]}], "messages[0].tool_calls[0]"),
    # a result must answer a call made earlier in the conversation (as OpenAI answers)
    ([*HISTORY[:3], {"role": "tool", "tool_call_id": "call_zzz", "content": "?"}], "messages[3].tool_call_id"),
    ([{"role": "tool", "tool_call_id": "call_x", "content": "before its call"}, *HISTORY[5:]], "messages[0].tool_call_id"),
])
def test_bad_history_names_the_field(bad, param):
    with pytest.raises(ToolSpecError) as info:
        prepare_history(bad, registry.get("hermes"))
    assert info.value.param == param


def test_a_result_must_answer_an_earlier_call_unless_its_id_names_the_call():
    """As OpenAI, a tool result whose id answers no earlier call is refused; an id in the dialect's
    own `functions.NAME:IDX` form names its call by itself, and Kimi's streaming guide sends results
    without the assistant message (its client loop must run unmodified)."""
    orphan = [{"role": "user", "content": "Weather?"}, {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sun"}]
    h = prepare_history(orphan, registry.get("kimi_k2"))
    assert h.messages[1]["tool_call_id"] == "functions.get_weather:0"
    for dialect, call_id in (("hermes", "functions.get_weather:0"), ("kimi_k2", "call_abc"), ("kimi_k2", "functions.get weather:x")):
        with pytest.raises(ToolSpecError, match=r"messages\[1\].tool_call_id"):
            prepare_history([orphan[0], {**orphan[1], "tool_call_id": call_id}], registry.get(dialect))


def test_a_client_id_in_the_dialects_made_up_form_is_kept():
    """Mistral's ids are nine letters and digits: one of that form stays (the client's id is
    stable across turns); any other is replaced by one of that form, and results follow it."""
    d = registry.get("mistral")
    call = {"type": "function", "function": {"name": "f", "arguments": "{}"}}
    history = prepare_history([{"role": "user", "content": "x"},
                               {"role": "assistant", "content": None, "tool_calls": [{**call, "id": "abcDEF123"}, {**call, "id": "call_1"}]},
                               {"role": "tool", "tool_call_id": "abcDEF123", "content": "1"},
                               {"role": "tool", "tool_call_id": "call_1", "content": "2"}], d)
    first, second = (c["id"] for c in history.messages[1]["tool_calls"])
    assert first == "abcDEF123"
    assert second != "call_1" and d.is_call_id(second)
    assert [m["tool_call_id"] for m in history.messages[2:]] == [first, second]
