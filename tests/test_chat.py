"""History -> prompt: Kimi ids rewritten, tool results mapped by the id the client sent."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrained import ToolSpecError, demo
from constrained import dialect as registry
from constrained.chat import after_tool_results, jinja_chat_template, prepare_history, render_prompt

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
    """Kimi's own layout (tool_declare first, results as `## Return of ID`); M1's `tool name:` /
    `tool result:` lines, with the name of a result sent as one named part (seed 003)."""
    d = registry.get("kimi_k2")
    prompt = render_prompt(d, prepare_history(HISTORY, d), [{"type": "function", "function": {"name": "get_weather"}}])
    assert "functions.get_weather:1<|tool_call_argument_begin|>" + json.dumps({"city": "Tokyo"}) in prompt
    assert "<|im_system|>tool<|im_middle|>## Return of functions.get-time.now:2\n12:00<|im_end|>" in prompt
    assert prompt.startswith('<|im_system|>tool_declare<|im_middle|>[{"type": "function", "function": {"name": "get_weather"}}]<|im_end|>')
    assert prompt.endswith("<|im_end|><|im_assistant|>assistant<|im_middle|>")
    m1 = registry.get("minimax_m1")
    prompt = render_prompt(m1, prepare_history(HISTORY, m1), None)
    assert "<beginning_of_sentence>tool name=tools\ntool name: get-time.now\ntool result: 12:00\n\n<end_of_sentence>\n" in prompt
    assert prompt.endswith("<beginning_of_sentence>ai name=assistant\n")


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


# -- the chat formats: the Python renderer and the Jinja template write the same text ----------------
_TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@st.composite
def conversations(draw):
    """An OpenAI conversation: optional system prompt, then rounds of a user turn and an
    assistant turn that answers in text or calls (with the results after it, then maybe an answer)."""
    messages: list[dict] = [{"role": "system", "content": draw(st.sampled_from(["Be brief.", "Answer in French."]))}] if draw(st.booleans()) else []
    calls = 0
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(st.sampled_from(["Weather in Paris?", "Hi", "And in Tokyo & Oslo?"]))})
        if not draw(st.booleans()):
            messages.append({"role": "assistant", "content": draw(st.sampled_from(["Hello!", "It is sunny."]))})
            continue
        n = draw(st.integers(1, 2))
        ids = [f"call{calls + k:04d}x" for k in range(n)]  # 9 letters and digits: Mistral keeps them
        messages.append({"role": "assistant", "content": draw(st.sampled_from(["", "Let me check."])), "tool_calls": [
            {"id": i, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}
            for i, c in zip(ids, ["Paris", "Tokyo"])]})
        calls += n
        messages += [{"role": "tool", "tool_call_id": i, "name": "get_weather", "content": r} for i, r in zip(ids, ["sunny", "rain"])]
        if draw(st.booleans()):
            messages.append({"role": "assistant", "content": "Sunny."})
    return messages


@pytest.fixture(scope="module")
def templated():
    """Per dialect, a demo tokenizer carrying the dialect's Jinja template."""
    out = {}
    for name in registry.names():
        d = registry.get(name)
        tok = demo.load_tokenizer.__wrapped__(d)
        tok.chat_template = jinja_chat_template(d)
        out[name] = tok
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversation=conversations(), with_tools=st.booleans(), generation_prompt=st.booleans())
def test_the_jinja_template_writes_what_render_prompt_writes(templated, conversation, with_tools, generation_prompt):
    """For every dialect's chat format: what a client gets from `apply_chat_template` on the
    checkpoint is byte for byte the prompt the server writes (roles, tool list, grouped results,
    DeepSeek's assistant turn without an opening after results, Mistral's system text in the user turn)."""
    tools = _TOOLS if with_tools else None
    for name, tok in templated.items():
        d = registry.get(name)
        h = prepare_history(conversation, d)
        ours = render_prompt(d, h, tools, add_generation_prompt=generation_prompt)
        theirs = tok.apply_chat_template(h.messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt)
        assert ours == theirs, name


def test_every_chat_format_is_declared_for_its_family():
    """Each dialect names a chat format whose end of turn is one of its special tokens and which
    the prompt actually uses: its user opening and (for a call) its end of turn are in the text."""
    for name in registry.names():
        d = registry.get(name)
        fmt = d.chat
        assert set(fmt.stop_tokens) <= set(d.vocab_markers), name
        convo = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
        text = render_prompt(d, prepare_history(convo, d), _TOOLS, add_generation_prompt=False)
        assert fmt.user[0] in text and (fmt.stop_opens_next or fmt.stop in text), name


@pytest.mark.parametrize("name", registry.names())
def test_a_prompt_that_ends_with_results_is_told_from_one_that_ends_with_a_user_turn(name):
    """`after_tool_results` (the vLLM demo nudge's "answer now" test) reads the format's openings,
    Qwen's results that open like a user turn included."""
    d = registry.get(name)
    call = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call00001", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call00001", "name": "get_weather", "content": "sunny"}]
    prompts = [render_prompt(d, prepare_history(m, d), _TOOLS) for m in
               (call, call[:1], [*call, {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": "Thanks"}])]
    assert [after_tool_results(d, p) for p in prompts] == [True, False, False]
