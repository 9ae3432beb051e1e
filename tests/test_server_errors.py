"""Malformed and hostile requests: each gets a 4xx in OpenAI's error shape with a message that
names the problem, and the server keeps serving."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import OpenAI

from constrained.server.app import ServerConfig
from constrained.server.testing import DemoServer

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
MSGS = [{"role": "user", "content": "hi"}]


def tool(name="t", parameters=None):
    return {"type": "function", "function": {"name": name, "parameters": parameters if parameters is not None else {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def server():
    s = DemoServer("kimi_k2", config=ServerConfig(max_body_bytes=4 * 1024 * 1024))
    yield s
    s.close()


def chat(**kw):
    return {"model": "MODEL", "messages": MSGS, **kw}


# (name, method, path, body (dict = JSON with "MODEL" replaced, str/bytes = raw), status, words the message must contain)
CASES = [
    ("bad json", "POST", "/v1/chat/completions", "{not json", 400, ["not valid json"]),
    ("empty body", "POST", "/v1/chat/completions", "", 400, ["empty"]),
    ("array body", "POST", "/v1/chat/completions", "[1, 2]", 400, ["json object"]),
    ("null body", "POST", "/v1/chat/completions", "null", 400, ["json object"]),
    ("string body", "POST", "/v1/chat/completions", '"hello"', 400, ["json object"]),
    ("deep nesting", "POST", "/v1/chat/completions", "[" * 200000 + "]" * 200000, 400, ["json"]),
    ("invalid utf-8", "POST", "/v1/chat/completions", b'{"model": "\xff\xfe"}', 400, ["json"]),
    ("huge body", "POST", "/v1/chat/completions", json.dumps(chat(messages=[{"role": "user", "content": "x" * (5 * 1024 * 1024)}])), 413, ["larger than"]),
    ("missing model", "POST", "/v1/chat/completions", {"messages": MSGS}, 400, ["model"]),
    ("model not a string", "POST", "/v1/chat/completions", chat(model=7), 400, ["model"]),
    ("unknown model", "POST", "/v1/chat/completions", chat(model="gpt-9"), 404, ["gpt-9", "does not exist"]),
    ("missing messages", "POST", "/v1/chat/completions", {"model": "MODEL"}, 400, ["messages"]),
    ("empty messages", "POST", "/v1/chat/completions", chat(messages=[]), 400, ["messages"]),
    ("messages not a list", "POST", "/v1/chat/completions", chat(messages="hi"), 400, ["messages"]),
    ("message without role", "POST", "/v1/chat/completions", chat(messages=[{"content": "hi"}]), 400, ["messages[0].role"]),
    ("bad role", "POST", "/v1/chat/completions", chat(messages=[{"role": "wizard", "content": "hi"}]), 400, ["messages[0].role"]),
    ("message not an object", "POST", "/v1/chat/completions", chat(messages=["hi"]), 400, ["messages[0]"]),
    ("content wrong type", "POST", "/v1/chat/completions", chat(messages=[{"role": "user", "content": 5}]), 400, ["messages[0].content"]),
    ("user without content", "POST", "/v1/chat/completions", chat(messages=[{"role": "user"}]), 400, ["messages[0]", "content"]),
    ("image part", "POST", "/v1/chat/completions", chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]), 400, ["content", "text"]),
    ("tool_calls on a user message", "POST", "/v1/chat/completions",
     chat(messages=[{"role": "user", "content": "x", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]), 400, ["tool_calls"]),
    ("history arguments not JSON", "POST", "/v1/chat/completions",
     chat(messages=[{"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}, *MSGS]), 400, ["arguments", "json"]),
    ("tool result for no earlier call", "POST", "/v1/chat/completions",
     chat(messages=[*MSGS, {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "b", "content": "x"}]), 400, ["messages[2].tool_call_id", "'b'", "matches no tool call"]),
    ("n=2", "POST", "/v1/chat/completions", chat(n=2), 400, ["n", "only n=1"]),
    ("max_tokens as string", "POST", "/v1/chat/completions", chat(max_tokens="10"), 400, ["max_tokens"]),
    ("max_tokens zero", "POST", "/v1/chat/completions", chat(max_tokens=0), 400, ["max_tokens"]),
    ("max_completion_tokens negative", "POST", "/v1/chat/completions", chat(max_completion_tokens=-3), 400, ["max_completion_tokens"]),
    ("temperature too high", "POST", "/v1/chat/completions", chat(temperature=5), 400, ["temperature"]),
    ("temperature as string", "POST", "/v1/chat/completions", chat(temperature="hot"), 400, ["temperature"]),
    ("top_p zero", "POST", "/v1/chat/completions", chat(top_p=0), 400, ["top_p"]),
    ("seed as float", "POST", "/v1/chat/completions", chat(seed=1.5), 400, ["seed"]),
    ("stream not a bool", "POST", "/v1/chat/completions", chat(stream="yes"), 400, ["stream"]),
    ("stream_options not an object", "POST", "/v1/chat/completions", chat(stream=True, stream_options="x"), 400, ["stream_options"]),
    ("too many stop sequences", "POST", "/v1/chat/completions", chat(stop=["a", "b", "c", "d", "e"]), 400, ["stop"]),
    ("stop as number", "POST", "/v1/chat/completions", chat(stop=123), 400, ["stop"]),
    ("logprobs not a bool", "POST", "/v1/chat/completions", chat(logprobs="yes"), 400, ["logprobs"]),
    ("top_logprobs too many", "POST", "/v1/chat/completions", chat(logprobs=True, top_logprobs=50), 400, ["top_logprobs"]),
    ("top_logprobs without logprobs", "POST", "/v1/chat/completions", chat(top_logprobs=2), 400, ["top_logprobs", "logprobs"]),
    ("logit_bias bad key", "POST", "/v1/chat/completions", chat(logit_bias={"abc": 1}), 400, ["logit_bias"]),
    ("logit_bias out of range", "POST", "/v1/chat/completions", chat(logit_bias={"5": 500}), 400, ["logit_bias"]),
    ("logit_bias token outside vocabulary", "POST", "/v1/chat/completions", chat(logit_bias={"99999999": 1}), 400, ["logit_bias", "vocabulary"]),
    ("tools not a list", "POST", "/v1/chat/completions", chat(tools={"a": 1}), 400, ["tools"]),
    ("tool without function", "POST", "/v1/chat/completions", chat(tools=[{"type": "function"}]), 400, ["tools[0].function"]),
    ("tool of another type", "POST", "/v1/chat/completions", chat(tools=[{"type": "retrieval", "function": {"name": "x"}}]), 400, ["tools[0].type"]),
    ("tool name missing", "POST", "/v1/chat/completions", chat(tools=[{"type": "function", "function": {"parameters": {}}}]), 400, ["tools[0].function.name"]),
    ("tool name with spaces", "POST", "/v1/chat/completions", chat(tools=[tool("bad name!")]), 400, ["bad name!", "tools[0].function.name"]),
    ("duplicate tool names", "POST", "/v1/chat/completions", chat(tools=[tool("a"), tool("a")]), 400, ["duplicate", "'a'"]),
    ("parameters not an object", "POST", "/v1/chat/completions", chat(tools=[tool("a", "abc")]), 400, ["parameters"]),
    ("unsupported schema keyword: remote $ref", "POST", "/v1/chat/completions",
     chat(tools=[tool("fetch", {"type": "object", "properties": {"x": {"$ref": "http://example.com/s.json"}}})]), 400, ["fetch", "$ref", "properties"]),
    ("unsupported schema keyword: unknown type", "POST", "/v1/chat/completions",
     chat(tools=[tool("a"), tool("odd", {"type": "object", "properties": {"x": {"type": "frobnicate"}}})]), 400, ["odd", "type", "frobnicate"]),
    ("unsupported schema keyword: extends", "POST", "/v1/chat/completions",
     chat(tools=[tool("old", {"type": "object", "extends": {"type": "object"}})]), 400, ["old", "extends"]),
    ("tool_choice names a missing tool", "POST", "/v1/chat/completions", chat(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}), 400, ["nope", "not in tools"]),
    ("tool_choice named without tools", "POST", "/v1/chat/completions", chat(tool_choice={"type": "function", "function": {"name": "nope"}}), 400, ["nope"]),
    ("tool_choice required without tools", "POST", "/v1/chat/completions", chat(tool_choice="required"), 400, ["required", "tool"]),
    ("tool_choice required with empty tools", "POST", "/v1/chat/completions", chat(tools=[], tool_choice="required"), 400, ["required", "tool"]),
    ("tool_choice unknown string", "POST", "/v1/chat/completions", chat(tools=[TOOL], tool_choice="sometimes"), 400, ["tool_choice"]),
    ("tool_choice without function", "POST", "/v1/chat/completions", chat(tools=[TOOL], tool_choice={"type": "function"}), 400, ["tool_choice"]),
    ("parallel_tool_calls not a bool", "POST", "/v1/chat/completions", chat(tools=[TOOL], parallel_tool_calls="no"), 400, ["parallel_tool_calls"]),
    ("response_format unknown type", "POST", "/v1/chat/completions", chat(response_format={"type": "xml"}), 400, ["response_format"]),
    ("response_format json_schema without schema", "POST", "/v1/chat/completions", chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}}), 400, ["response_format", "schema"]),
    ("response_format unsupported keyword", "POST", "/v1/chat/completions",
     chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"$ref": "http://x/y"}}}}}), 400, ["response_format", "$ref"]),
    ("prompt longer than the context", "POST", "/v1/chat/completions", chat(messages=[{"role": "user", "content": "hello " * 9000}]), 400, ["context"]),
    ("completions: missing prompt", "POST", "/v1/completions", {"model": "MODEL"}, 400, ["prompt"]),
    ("completions: empty prompt list", "POST", "/v1/completions", {"model": "MODEL", "prompt": []}, 400, ["prompt"]),
    ("completions: two prompts", "POST", "/v1/completions", {"model": "MODEL", "prompt": ["a", "b"]}, 400, ["prompt", "one prompt"]),
    ("completions: token id outside vocabulary", "POST", "/v1/completions", {"model": "MODEL", "prompt": [1, 10**9]}, 400, ["prompt[1]"]),
    ("completions: logprobs too many", "POST", "/v1/completions", {"model": "MODEL", "prompt": "a", "logprobs": 10}, 400, ["logprobs"]),
    ("completions: suffix", "POST", "/v1/completions", {"model": "MODEL", "prompt": "a", "suffix": "b"}, 400, ["suffix"]),
    ("completions: unknown model", "POST", "/v1/completions", {"model": "davinci", "prompt": "a"}, 404, ["davinci"]),
    ("completions: n=3", "POST", "/v1/completions", {"model": "MODEL", "prompt": "a", "n": 3}, 400, ["n"]),
    ("unknown route", "POST", "/v1/embeddings", {"model": "MODEL", "input": "x"}, 404, ["/v1/embeddings"]),
    ("wrong method", "GET", "/v1/chat/completions", None, 405, ["get", "/v1/chat/completions"]),
    ("unknown model id", "GET", "/v1/models/nope", None, 404, ["nope"]),
]


def send(server, method, path, body, headers=None):
    headers = dict(headers or {})
    if isinstance(body, dict):
        content = json.dumps(body).replace('"MODEL"', json.dumps(server.model)).encode()
        headers.setdefault("content-type", "application/json")
    elif isinstance(body, str):
        content = body.encode()
        headers.setdefault("content-type", "application/json")
    else:
        content = body
    return httpx.request(method, server.url + path, content=content, headers=headers, timeout=60)


def check_error(resp, status, words, name):
    assert resp.status_code == status, (name, resp.status_code, resp.text[:300])
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}, name
    assert isinstance(err["message"], str) and err["message"], name
    for w in words:
        assert w.lower() in err["message"].lower(), (name, w, err["message"])
    return err


def test_hostile_requests(server):
    assert len(CASES) >= 40
    for name, method, path, body, status, words in CASES:
        check_error(send(server, method, path, body), status, words, name)
    # still serving
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    client = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    r = client.chat.completions.create(model=server.model, messages=MSGS, tools=[TOOL], tool_choice="required", max_tokens=40)
    assert r.choices[0].finish_reason == "tool_calls"
    text = httpx.get(server.url + "/metrics").text
    assert 'status="400"' in text and 'status="413"' in text and 'status="404"' in text


def test_error_params_name_the_field(server):
    err = check_error(send(server, "POST", "/v1/chat/completions", chat(max_tokens="10")), 400, [], "max_tokens")
    assert err["param"] == "max_tokens"
    err = check_error(send(server, "POST", "/v1/chat/completions", chat(messages=[{"role": "wizard", "content": "x"}])), 400, [], "role")
    assert err["param"] == "messages[0].role"
    err = check_error(send(server, "POST", "/v1/chat/completions", chat(tools=[tool("a"), tool("b", {"type": "object", "properties": {"x": {"$ref": "http://e/x"}}})])), 400, [], "ref")
    assert err["param"] == "tools[1].function.parameters" and err["code"] == "unsupported_schema"
    err = check_error(send(server, "POST", "/v1/chat/completions", chat(tools=[tool("a"), tool("a")])), 400, [], "dup")
    assert err["param"] == "tools[1].function.name"
    err = check_error(send(server, "POST", "/v1/chat/completions", chat(model="nope")), 404, [], "model")
    assert err["param"] == "model" and err["code"] == "model_not_found"


def test_sdk_raises_typed_errors(server):
    import openai

    client = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=server.model, messages=MSGS, tools=[TOOL, TOOL])
    assert "duplicate" in str(info.value)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=MSGS)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=server.model, messages=MSGS, n=2)
    assert info.value.body["param"] == "n"


def test_bearer_auth():
    from constrained.server.engine import EngineConfig

    s = DemoServer("kimi_k2", config=ServerConfig(api_key="sekrit"), engine_config=EngineConfig(default_seed=0))
    try:
        body = {"model": s.model, "messages": MSGS, "max_tokens": 2}
        for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "sekrit"}, 401), ({"Authorization": "Bearer sekrit"}, 200)):
            resp = httpx.post(s.url + "/v1/chat/completions", json=body, headers=headers, timeout=60)
            assert resp.status_code == status, (headers, resp.text)
            if status == 401:
                err = resp.json()["error"]
                assert err["type"] == "authentication_error" and ("key" in err["message"].lower() or "authorization" in err["message"].lower())
        assert httpx.get(s.url + "/v1/models").status_code == 401
        assert httpx.get(s.url + "/health").status_code == 200  # probes need no key
        import openai

        with pytest.raises(openai.AuthenticationError):
            OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0).models.list()
        assert OpenAI(base_url=s.url + "/v1", api_key="sekrit", max_retries=0).models.list().data[0].id == s.model
    finally:
        s.close()
