"""The OpenAI-compatible server, driven by the official `openai` SDK against real uvicorn on 127.0.0.1.

The model is the random demo model with a logits bias toward closing tokens (applied before the
grammar mask, see `constrained.demo.server_nudge`), so that calls finish within small
token budgets; the grammar alone decides what is allowed. The server derives a seed from each
prompt when a request sends none, so every test is deterministic.
"""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
import pytest
from openai import OpenAI

from constrained.server.testing import DemoServer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 9}},
            "required": ["query", "limit"],
        },
    },
}
STRICT = {  # the Agents SDK shape: strict, every property required, nullable as anyOf
    "type": "function",
    "function": {
        "name": "book_table",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "people": {"type": "integer", "enum": [1, 2, 3]},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "vip": {"type": "boolean"},
            },
            "required": ["people", "note", "vip"],
            "additionalProperties": False,
        },
    },
}
NO_ARGS = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}
TOOLS = [WEATHER, SEARCH, STRICT, NO_ARGS]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
KIMI_ID = re.compile(r"^functions\.([\w.\-]+):(\d+)$")


@pytest.fixture(scope="module")
def kimi():
    server = DemoServer("kimi_k2")
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(kimi):
    return OpenAI(base_url=kimi.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def token_bias(server, **by_text):
    """An OpenAI `logit_bias` for the demo tokenizer: {"eos": 9, "quote": -12} style."""
    tok = server.state.served.tokenizer
    named = {"eos": tok.eos_token_id, "quote": tok.encode('"', add_special_tokens=False)[0],
             "section_end": tok.convert_tokens_to_ids(server.state.dialect.section_end.strip() or "<none>"),
             "call_begin": tok.convert_tokens_to_ids("<|tool_call_begin|>")}
    return {str(named[k]): v for k, v in by_text.items()}


def check_calls(calls, schemas=SCHEMAS):
    """Every call: a known tool, arguments a JSON string that validates against its schema."""
    for call in calls:
        assert call.type == "function"
        args = json.loads(call.function.arguments)
        assert isinstance(args, dict)
        jsonschema.validate(args, schemas[call.function.name])


def user(text):
    return [{"role": "user", "content": text}]


def summary(completion):
    choice = completion.choices[0]
    msg = choice.message
    calls = [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls or []]
    return choice.finish_reason, msg.content, calls


# ------------------------------------------------------------------------------------- basics
def test_models_health_metrics(kimi, client):
    assert [m.id for m in client.models.list().data] == [kimi.model]
    assert client.models.retrieve(kimi.model).id == kimi.model
    health = httpx.get(kimi.url + "/health").json()
    assert health["status"] == "ok" and health["dialect"] == "kimi_k2"
    client.chat.completions.create(model=kimi.model, messages=user("hi"), tools=[WEATHER], tool_choice="required", max_tokens=40)
    text = httpx.get(kimi.url + "/metrics").text
    for name in ("constrained_http_requests_total", "constrained_generation_tokens_total", "constrained_grammar_compile_seconds_total",
                 "constrained_mask_seconds_total", "constrained_queue_depth", "constrained_prompt_tokens_total"):
        assert f"# TYPE {name} " in text
    generated = float(re.search(r"^constrained_generation_tokens_total (\S+)$", text, re.M).group(1))
    assert generated > 0
    assert 'constrained_http_requests_total{path="/v1/chat/completions",status="200"}' in text


# ------------------------------------------------------------------------------------- tool loops
def test_tool_loop_non_streaming(kimi, client):
    """Three turns of calls with tool results in between, then a text answer. Kimi ids count the
    calls of the whole conversation; the SDK's own message objects go back as history."""
    messages = user("Weather in Paris, then search for restaurants.")
    seen_ids = []
    for turn in range(3):
        r = client.chat.completions.create(model=kimi.model, messages=messages, tools=TOOLS, tool_choice="required", max_tokens=80, seed=turn)
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls", summary(r)
        assert choice.message.content is None
        calls = choice.message.tool_calls
        assert calls
        check_calls(calls)
        for j, call in enumerate(calls):
            name, idx = KIMI_ID.match(call.id).groups()
            assert name == call.function.name
            assert int(idx) == len(seen_ids) + j  # IDX counts the whole conversation
        seen_ids += [c.id for c in calls]
        assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert r.model_extra["constrained"]["violations"] == []
        messages.append(choice.message)
        for call in calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "name": call.function.name, "content": json.dumps({"ok": True})})
    assert len(set(seen_ids)) == len(seen_ids)
    # a text answer to end the loop (the per-request logit_bias makes the random model stop soon)
    r = client.chat.completions.create(model=kimi.model, messages=messages, tools=TOOLS, tool_choice="none", max_tokens=60,
                                       logit_bias=token_bias(kimi, eos=6, quote=-10))
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.tool_calls is None
    assert r.model_extra["constrained"]["violations"] == []


def test_tool_loop_streaming(kimi, client):
    """The same loop through the SDK's stream helper; the final snapshot holds whole calls."""
    messages = user("Weather in Oslo?")
    count = 0
    for turn in range(2):
        with client.chat.completions.stream(model=kimi.model, messages=messages, tools=TOOLS, tool_choice="required", max_tokens=80, seed=10 + turn) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_completion()
        assert "tool_calls.function.arguments.delta" in kinds
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        check_calls(choice.message.tool_calls)
        for j, call in enumerate(choice.message.tool_calls):
            assert KIMI_ID.match(call.id).group(2) == str(count + j)
        count += len(choice.message.tool_calls)
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}} for c in choice.message.tool_calls]})
        for call in choice.message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "done"})


def test_parallel_and_single(kimi, client):
    """parallel_tool_calls=true lets several calls through (indices contiguous, ids unique);
    false allows exactly one, for the same seeds."""
    multi = 0
    more = token_bias(kimi, section_end=-4, call_begin=1)  # undo the server's nudge toward closing the section
    for seed in range(4):
        r = client.chat.completions.create(model=kimi.model, messages=user("Use the tools."), tools=[WEATHER, SEARCH], tool_choice="required",
                                           parallel_tool_calls=True, max_tokens=160, seed=seed, logit_bias=more)
        assert r.choices[0].finish_reason == "tool_calls", summary(r)
        calls = r.choices[0].message.tool_calls
        check_calls(calls)
        assert [int(KIMI_ID.match(c.id).group(2)) for c in calls] == list(range(len(calls)))
        multi += len(calls) > 1
        single = client.chat.completions.create(model=kimi.model, messages=user("Use the tools."), tools=[WEATHER, SEARCH], tool_choice="required",
                                                parallel_tool_calls=False, max_tokens=120, seed=seed)
        assert single.choices[0].finish_reason == "tool_calls"
        assert len(single.choices[0].message.tool_calls) == 1
        check_calls(single.choices[0].message.tool_calls)
    assert multi >= 1  # the random model does open a second call under parallel_tool_calls=true


def test_named_and_none(kimi, client):
    for seed in range(3):
        r = client.chat.completions.create(model=kimi.model, messages=user("Search."), tools=TOOLS, max_tokens=80, seed=seed,
                                           tool_choice={"type": "function", "function": {"name": "search"}})
        assert r.choices[0].finish_reason == "tool_calls"
        calls = r.choices[0].message.tool_calls
        assert [c.function.name for c in calls] == ["search"]
        check_calls(calls)
        r = client.chat.completions.create(model=kimi.model, messages=user("Just talk."), tools=TOOLS, tool_choice="none", max_tokens=40, seed=seed)
        assert r.choices[0].message.tool_calls is None
        assert r.choices[0].finish_reason in ("stop", "length")


def test_strict_and_no_argument_tools(kimi, client):
    for name in ("book_table", "ping"):
        r = client.chat.completions.create(model=kimi.model, messages=user("Go."), tools=TOOLS, max_tokens=80,
                                           tool_choice={"type": "function", "function": {"name": name}})
        calls = r.choices[0].message.tool_calls
        assert [c.function.name for c in calls] == [name]
        check_calls(calls)
    assert calls[0].function.arguments == "{}"


def test_auto_and_empty_tools(kimi, client):
    # auto: text, calls, or both; whatever comes back is well-formed
    for seed in range(3):
        r = client.chat.completions.create(model=kimi.model, messages=user("Maybe use a tool."), tools=TOOLS, tool_choice="auto", max_tokens=60, seed=seed)
        fr, content, calls = summary(r)
        assert fr in ("stop", "tool_calls", "length")
        if fr == "tool_calls":
            assert calls
            check_calls(r.choices[0].message.tool_calls)
        else:
            assert not calls
    # tools: [] and no tools at all are plain chat
    for extra in ({"tools": []}, {}, {"tools": [], "tool_choice": "auto"}):
        r = client.chat.completions.create(model=kimi.model, messages=user("Hello"), max_tokens=20, **extra)
        assert r.choices[0].message.tool_calls is None


# ------------------------------------------------------------------------------------- streaming contract
def raw_stream(kimi, body):
    """-> (chunks, saw_done) reading the SSE stream by hand."""
    chunks, done = [], False
    with httpx.stream("POST", kimi.url + "/v1/chat/completions", json={"model": kimi.model, "stream": True, **body}, timeout=120) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if not line:
                continue
            assert line.startswith("data: ")
            data = line[len("data: "):]
            assert not done, "nothing may follow [DONE]"
            if data == "[DONE]":
                done = True
                continue
            chunks.append(json.loads(data))
    return chunks, done


def test_stream_chunks_follow_the_contract(kimi):
    for seed, usage in ((0, False), (1, True), (2, False)):
        body = {"messages": user("Use tools."), "tools": [WEATHER, SEARCH], "tool_choice": "required", "max_tokens": 120, "seed": seed}
        if usage:
            body["stream_options"] = {"include_usage": True}
        chunks, done = raw_stream(kimi, body)
        assert done
        assert len({c["id"] for c in chunks}) == 1
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        choice_chunks = [c for c in chunks if c["choices"]]
        assert choice_chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        finishes = [c["choices"][0]["finish_reason"] for c in choice_chunks]
        assert finishes[-1] == "tool_calls" and all(f is None for f in finishes[:-1])
        if usage:
            assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
            assert choice_chunks[-1] is chunks[-2]
        else:
            assert all(c["choices"] for c in chunks) and all("usage" not in c or c["usage"] is None for c in chunks)
        deltas = [tc for c in choice_chunks for tc in c["choices"][0]["delta"].get("tool_calls") or []]
        headers = [d for d in deltas if "id" in d]
        assert [h["index"] for h in headers] == list(range(len(headers)))  # contiguous, once each
        indices = [d["index"] for d in deltas]
        assert indices == sorted(indices)  # never interleaved
        args = {}
        for d in deltas:
            assert "function" in d and isinstance(d["index"], int)
            if "id" in d:
                assert d["type"] == "function" and d["function"]["name"] and d["function"]["arguments"] == ""
                assert d["index"] not in args
                args[d["index"]] = ""
            else:
                assert set(d) == {"index", "function"} and set(d["function"]) == {"arguments"}
                args[d["index"]] += d["function"]["arguments"]
        fragments = [d for d in deltas if "id" not in d]
        assert len(fragments) > len(headers)  # arguments streamed as generated, not in one burst
        for i, h in enumerate(headers):
            jsonschema.validate(json.loads(args[i]), SCHEMAS[h["function"]["name"]])


@pytest.mark.parametrize("mode", ["required", "auto", "named", "none"])
def test_stream_equals_non_stream(kimi, client, mode):
    choice = {"named": {"type": "function", "function": {"name": "get_weather"}}}.get(mode, mode)
    for seed in (3, 4):
        # (no strict tool here: the SDK's stream helper raises on "length" when it has strict tools to parse)
        kw = dict(model=kimi.model, messages=user("Weather in Rome?"), tools=[WEATHER, SEARCH, NO_ARGS], tool_choice=choice, max_tokens=48, seed=seed)
        whole = client.chat.completions.create(**kw)
        with client.chat.completions.stream(**kw) as stream:
            for _ in stream:
                pass
            # (get_final_completion() raises on "length"; the accumulated snapshot is the same data)
            streamed = stream.current_completion_snapshot
        assert summary(streamed) == summary(whole)
        # and by hand, as the seed loops accumulate
        content, calls, finish = "", {}, None
        for chunk in client.chat.completions.create(**kw, stream=True):
            delta = chunk.choices[0].delta
            content += delta.content or ""
            for tc in delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += tc.id or ""
                entry["name"] += tc.function.name or ""
                entry["arguments"] += tc.function.arguments or ""
            finish = chunk.choices[0].finish_reason or finish
        fr, whole_content, whole_calls = summary(whole)
        assert finish == fr
        assert (content or None) == whole_content
        assert [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())] == whole_calls


# ------------------------------------------------------------------------------------- limits
def test_length_never_reports_a_broken_call(kimi, client):
    """Budgets from the shortest complete answer up: the budget closes the call in time, so an
    answer cut by max_tokens holds only complete, valid calls (flagged `truncated`), never raw
    markers; below the shortest answer a required call is a 400 naming the minimum."""
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=kimi.model, messages=user("Weather?"), tools=[WEATHER], tool_choice="required", max_tokens=1)
    minimum = int(info.value.body["message"].split("takes ")[1].split(" tokens")[0])
    seen = set()
    for max_tokens in (minimum, minimum + 3, minimum + 9, 80):
        kw = dict(model=kimi.model, messages=user("Weather?"), tools=[WEATHER], tool_choice="required", max_tokens=max_tokens, seed=5)
        r = client.chat.completions.create(**kw)
        choice = r.choices[0]
        check_calls(choice.message.tool_calls)
        assert choice.message.content is None and r.usage.completion_tokens <= max_tokens
        truncated = r.model_extra["constrained"]["truncated"]
        # tool_calls: nothing cut; length: the budget closed the answer (the calls it cut are flagged)
        assert (choice.finish_reason, bool(truncated)) in (("tool_calls", False), ("length", True), ("length", False)), (choice.finish_reason, truncated)
        if choice.finish_reason == "tool_calls":
            assert not truncated
        seen.add(choice.finish_reason)
        chunks = list(client.chat.completions.create(**kw, stream=True))
        assert chunks[-1].choices[0].finish_reason == choice.finish_reason
    assert seen == {"length", "tool_calls"}  # the smallest budgets were cut, the largest was not
    for max_tokens in (1, 4):  # auto: stopping at once is a complete answer
        r = client.chat.completions.create(model=kimi.model, messages=user("Weather?"), tools=[WEATHER], max_tokens=max_tokens, seed=5)
        check_calls(r.choices[0].message.tool_calls or [])
        assert "<|tool_call" not in (r.choices[0].message.content or "")
        assert r.choices[0].finish_reason == ("length" if r.usage.completion_tokens == max_tokens else "stop")


def test_stop_sequences(kimi, client):
    kw = dict(model=kimi.model, messages=user("Say something."), max_tokens=30, seed=7, logit_bias=token_bias(kimi, quote=-12))
    full = client.chat.completions.create(**kw).choices[0].message.content
    assert full and len(full) > 12
    stop = full[6:10]
    cut = full[: full.index(stop)].strip()
    r = client.chat.completions.create(**kw, stop=[stop, "\u2603never"])
    assert r.choices[0].finish_reason == "stop"
    assert (r.choices[0].message.content or "") == cut
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**kw, stop=stop, stream=True))
    assert streamed.strip() == cut
    # a stop sequence never cuts a tool call
    r = client.chat.completions.create(model=kimi.model, messages=user("Weather?"), tools=[WEATHER], tool_choice="required", max_tokens=80, seed=1, stop=['"', "{"])
    assert r.choices[0].finish_reason == "tool_calls"
    check_calls(r.choices[0].message.tool_calls)


@pytest.fixture(scope="module")
def unnudged():
    """The demo model as it is (no push toward closing): it writes whatever the grammar allows."""
    server = DemoServer("kimi_k2", bias={demo_token("<think>"): -30.0})
    yield server
    server.close()


def demo_token(text):
    from constrained import demo

    return demo.load_tokenizer("kimi_k2").convert_tokens_to_ids(text)


def _json_answers(server, schema, strict, n=12, **extra):
    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    out = []
    for seed in range(n):
        fmt = {"name": "verdict", "schema": schema, **({"strict": True} if strict else {})}
        r = client.chat.completions.create(model=server.model, messages=user("JSON please"), max_tokens=60, seed=seed,
                                           response_format={"type": "json_schema", "json_schema": fmt}, **extra)
        out.append(json.loads(r.choices[0].message.content))
    return out


def test_strict_response_format_closes_the_object(unnudged):
    """strict: true closes the object to its declared properties (as OpenAI); without it JSON
    Schema allows more, and the un-nudged model writes more: so the strict run would show extra
    keys if `strict` were lost on its way to the grammar."""
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}}, "required": ["answer"]}
    loose = _json_answers(unnudged, schema, strict=False)
    assert any(set(v) - {"answer"} for v in loose), loose  # room for extra keys, and the model takes it
    for verdict in _json_answers(unnudged, schema, strict=True):
        jsonschema.validate(verdict, schema)
        assert list(verdict) == ["answer"]


def test_the_servers_policy_reaches_parse_and_validation():
    """--additional-properties schema: a free-form tool (`{"type": "object"}`) takes any keys, and
    the violations reported for them (non-streamed: parse; streamed: the final chunk) follow the
    same policy, so they are none; under forbid they would all be violations."""
    from constrained.server.app import ServerConfig

    server = DemoServer("kimi_k2", bias={demo_token("<think>"): -30.0}, config=ServerConfig(additional_properties="schema"))
    try:
        client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)
        free = {"type": "function", "function": {"name": "note", "parameters": {"type": "object"}}}
        keys = 0
        for seed in range(6):
            kw = dict(model=server.model, messages=user("Note it."), tools=[free], tool_choice="required", max_tokens=50, seed=seed)
            r = client.chat.completions.create(**kw)
            assert r.choices[0].message.tool_calls and r.model_extra["constrained"]["violations"] == []
            keys += sum(len(json.loads(c.function.arguments)) for c in r.choices[0].message.tool_calls)
            last = list(client.chat.completions.create(**kw, stream=True))[-1]
            assert last.model_extra["constrained"]["violations"] == []
        assert keys  # the model did write keys a forbid policy would have reported
    finally:
        server.close()


def test_response_format(kimi, client):
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}, "score": {"type": "integer"}}, "required": ["answer", "score"]}
    for seed in range(2):
        r = client.chat.completions.create(model=kimi.model, messages=user("JSON please"), max_tokens=60, seed=seed,
                                           response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}})
        assert r.choices[0].finish_reason == "stop"
        verdict = json.loads(r.choices[0].message.content)
        jsonschema.validate(verdict, schema)
        assert list(verdict) == ["answer", "score"]
    r = client.chat.completions.create(model=kimi.model, messages=user("JSON please"), max_tokens=60, response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    # together with tools: either calls or JSON content
    r = client.chat.completions.create(model=kimi.model, messages=user("JSON or tools"), max_tokens=80, tools=[WEATHER], seed=2,
                                       response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}})
    fr, content, calls = summary(r)
    if fr == "tool_calls":
        check_calls(r.choices[0].message.tool_calls)
    else:
        jsonschema.validate(json.loads(content), schema)


def test_logprobs_and_sampling_parameters(kimi, client):
    r = client.chat.completions.create(model=kimi.model, messages=user("Weather?"), tools=[WEATHER], tool_choice="required", max_tokens=30,
                                       logprobs=True, top_logprobs=3, seed=2)
    entries = r.choices[0].logprobs.content
    assert len(entries) == r.usage.completion_tokens
    for e in entries:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        assert e.top_logprobs[0].logprob >= e.logprob - 1e-4
    # greedy is deterministic without a seed; temperature / top_p / seed are honoured
    a = client.chat.completions.create(model=kimi.model, messages=user("x"), tools=[WEATHER], tool_choice="required", max_tokens=40, temperature=0)
    b = client.chat.completions.create(model=kimi.model, messages=user("x"), tools=[WEATHER], tool_choice="required", max_tokens=40, temperature=0)
    assert summary(a) == summary(b)
    c = client.chat.completions.create(model=kimi.model, messages=user("x"), tools=[WEATHER], tool_choice="required", max_tokens=60, top_p=0.5, temperature=0.7, seed=11)
    check_calls(c.choices[0].message.tool_calls or [])
    d = client.chat.completions.create(model=kimi.model, messages=user("x"), tools=[WEATHER], tool_choice="required", max_tokens=60, top_p=0.5, temperature=0.7, seed=11)
    assert summary(c) == summary(d)
    e = client.chat.completions.create(model=kimi.model, messages=user("x"), max_tokens=5, n=1, presence_penalty=0.5, frequency_penalty=0.1, user="u1",
                                       logit_bias={"100": 5}, extra_body={"unknown_vendor_field": 1})
    assert e.choices[0].finish_reason in ("stop", "length")


def test_history_shapes(kimi, client):
    """Content as parts, null and "", developer role, client ids that are not Kimi's."""
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "system", "content": [{"type": "text", "text": "You help."}]},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "text", "text": "In Rome."}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "sunny"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "And Paris?"},
    ]
    r = client.chat.completions.create(model=kimi.model, messages=messages, tools=[WEATHER], tool_choice="required", max_tokens=60)
    calls = r.choices[0].message.tool_calls
    check_calls(calls)
    assert calls[0].id == "functions.get_weather:1"  # one call earlier in the conversation


def test_completions_endpoint(kimi, client):
    kw = dict(model=kimi.model, prompt="Once upon a time", max_tokens=12, seed=4)
    whole = client.completions.create(**kw)
    assert whole.object == "text_completion" and whole.choices[0].finish_reason in ("length", "stop")
    assert whole.usage.completion_tokens <= 12
    streamed = list(client.completions.create(**kw, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == whole.choices[0].text
    assert streamed[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    echo = client.completions.create(**kw, echo=True)
    assert echo.choices[0].text == "Once upon a time" + whole.choices[0].text
    lp = client.completions.create(**kw, logprobs=2)
    assert len(lp.choices[0].logprobs.tokens) == lp.usage.completion_tokens
    ids = client.completions.create(model=kimi.model, prompt=[1, 2, 3], max_tokens=3)
    assert ids.usage.prompt_tokens == 3
    default = client.completions.create(model=kimi.model, prompt="hi")
    assert default.usage.completion_tokens <= 16  # OpenAI's default max_tokens for completions


# ------------------------------------------------------------------------------------- MiniMax-M1
@pytest.fixture(scope="module")
def minimax():
    server = DemoServer("minimax_m1")
    yield server
    server.close()


def test_minimax_tool_loop(minimax):
    """M1: random ids, tool results sent back as M1 content parts ({name, type, text})."""
    client = OpenAI(base_url=minimax.url + "/v1", api_key="unused", max_retries=0)
    messages = user("Weather in Shanghai and a search.")
    ids = []
    for turn in range(2):
        r = client.chat.completions.create(model=minimax.model, messages=messages, tools=[WEATHER, SEARCH], tool_choice="required", max_tokens=120, seed=turn)
        assert r.choices[0].finish_reason == "tool_calls"
        calls = r.choices[0].message.tool_calls
        check_calls(calls)
        assert all(c.id.startswith("call_") for c in calls)
        ids += [c.id for c in calls]
        messages.append(r.choices[0].message)
        messages.append({"role": "tool", "content": [{"name": c.function.name, "type": "text", "text": "ok"} for c in calls]})
    assert len(set(ids)) == len(ids)
    with client.chat.completions.stream(model=minimax.model, messages=messages, tools=[WEATHER, SEARCH], tool_choice="required", max_tokens=120, seed=5) as s:
        for _ in s:
            pass
        final = s.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    check_calls(final.choices[0].message.tool_calls)


# ------------------------------------------------------------------------------------- policies
def _grammar_accepts(server, body, text):
    """Does the grammar the server compiles for `body` accept `text`? (prepare_chat: what a request gets)"""
    from constrained.guards import matcher as guarded_matcher
    from constrained.server.chat import prepare_chat
    from constrained.server.protocol import ChatCompletionRequest

    job = prepare_chat(server.state, ChatCompletionRequest.model_validate(body))
    tok = server.state.served.tokenizer
    matcher = guarded_matcher(job.grammar, terminate_without_stop_token=True)
    return all(matcher.accept_token(t) for t in tok.encode(text, add_special_tokens=False)) and matcher.is_completed()


def test_additional_properties_flag_reaches_the_grammar(kimi):
    from constrained.server.app import ServerConfig

    body = {"model": "m", "messages": user("Weather?"), "tools": [WEATHER], "tool_choice": "required"}
    extra = ('<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>'
             '{"city": "Paris", "unit": "celsius", "units": "C"}<|tool_call_end|><|tool_calls_section_end|>')
    assert _grammar_accepts(kimi, body, extra.replace(', "units": "C"', ""))
    assert not _grammar_accepts(kimi, body, extra)  # the default: forbid
    server = DemoServer("kimi_k2", config=ServerConfig(additional_properties="schema"))
    try:
        assert _grammar_accepts(server, body, extra)
        client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        r = client.chat.completions.create(model=server.model, messages=user("Weather?"), tools=[WEATHER], tool_choice="required", max_tokens=80, seed=3)
        assert r.choices[0].finish_reason == "tool_calls"
        check_calls(r.choices[0].message.tool_calls)
        assert r.model_extra["constrained"]["violations"] == []
    finally:
        server.close()
