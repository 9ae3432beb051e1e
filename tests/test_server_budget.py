"""The token budget through the real server and the official `openai` SDK: the random demo model
WITHOUT any nudge (it opens strings it never closes), and every answer still ends with complete,
valid calls; a budget that cannot hold one is a 400 naming the minimum."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import openai
import pytest
from openai import OpenAI

from constrained.server.app import ServerConfig
from constrained.server.engine import EngineConfig
from constrained.server.testing import DemoServer

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                     "days": {"type": "integer"}}, "required": ["city", "unit"]}}}
NOTE = {"type": "function", "function": {"name": "add-note.v2", "parameters": {
    "type": "object", "properties": {"text": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["text"]}}}
TOOLS = [WEATHER, NOTE]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


# budget_calls policy, and jump-forward (forced text fed at once: the budget's way out shortens by
# exactly the tokens a jump uses, so every output still completes)
@pytest.fixture(scope="module", params=[("flag", False), ("drop", False), ("flag", True)], ids=["flag", "drop", "flag-jump"])
def server(request):
    policy, jump = request.param
    s = DemoServer("kimi_k2", bias={}, engine_config=EngineConfig(default_seed=7, max_batch=16, jump_forward=jump),
                   config=ServerConfig(budget_calls=policy))
    yield s
    s.close()


def _client(s):
    return OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=300)


def _check_calls(calls):
    for call in calls:
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


def test_sixteen_concurrent_required_streams_end_with_complete_calls(server):
    client = _client(server)

    def one(i):
        stream = client.chat.completions.create(
            model=server.model, messages=[{"role": "user", "content": f"Weather, request {i}?"}], tools=TOOLS,
            tool_choice="required", max_tokens=120, stream=True, seed=i)
        calls: dict[int, dict] = {}
        finish = extension = None
        for chunk in stream:
            if not chunk.choices:
                continue
            for tc in chunk.choices[0].delta.tool_calls or []:
                c = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                if tc.function and tc.function.name:
                    c["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    c["arguments"] += tc.function.arguments
            if chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
                extension = (chunk.model_extra or {}).get("constrained")
        return calls, finish, extension

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    drop = server.state.config.budget_calls == "drop"
    for calls, finish, extension in results:
        if drop and not calls:
            assert finish == "length"  # the budget closed the only call, and drop mode left it out
        else:
            assert calls, "required: at least one complete call"
        assert sorted(calls) == list(range(len(calls)))
        for c in calls.values():
            jsonschema.validate(json.loads(c["arguments"]), SCHEMAS[c["name"]])
        assert extension["violations"] == []
        assert finish in ("tool_calls", "length")
        if extension["truncated"]:
            assert finish == "length"  # never silent


def test_named_call_at_a_small_budget(server):
    client = _client(server)
    for seed in range(4):
        r = client.chat.completions.create(
            model=server.model, messages=[{"role": "user", "content": "Note it."}], tools=TOOLS, max_tokens=64, seed=seed,
            tool_choice={"type": "function", "function": {"name": "add-note.v2"}})
        calls = r.choices[0].message.tool_calls or []
        ext = r.model_extra["constrained"]
        if server.state.config.budget_calls == "flag":
            assert [c.function.name for c in calls] == ["add-note.v2"]
        _check_calls(calls)
        assert ext["violations"] == []
        if ext["truncated"] or (server.state.config.budget_calls == "drop" and not calls):
            assert r.choices[0].finish_reason == "length"


def test_budget_below_the_shortest_call_is_a_400_naming_the_minimum(server):
    client = _client(server)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "x"}], tools=TOOLS,
                                       tool_choice="required", max_tokens=5)
    err = info.value.body
    assert err["param"] == "max_tokens" and err["code"] == "max_tokens_too_small"
    minimum = int(err["message"].split("takes ")[1].split(" tokens")[0])
    assert minimum > 5
    r = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "x"}], tools=TOOLS,
                                       tool_choice="required", max_tokens=minimum)
    # exactly the minimum holds a call (closed by the budget from the first token: flagged, or dropped)
    if server.state.config.budget_calls == "flag":
        assert r.choices[0].message.tool_calls and r.model_extra["constrained"]["truncated"] == [0]
    else:
        assert not r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "length"
    r = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "x"}], tools=TOOLS, max_tokens=1)
    assert r.choices[0].finish_reason in ("stop", "length")  # auto: stopping at once is an answer
