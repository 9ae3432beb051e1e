"""Concurrency: requests share forward passes (continuous batching), clients that go away free
their rows, a full queue answers 429."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import jsonschema
import pytest
from openai import AsyncOpenAI, OpenAI

from constrained.server.engine import EngineConfig
from constrained.server.testing import DemoServer

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}}
SEARCH = {"type": "function", "function": {"name": "search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 9}}, "required": ["query", "limit"]}}}
TOOLS = [WEATHER, SEARCH]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


@pytest.fixture(scope="module")
def server():
    s = DemoServer("kimi_k2", engine_config=EngineConfig(max_batch=16, max_queue=64, default_seed=0))
    yield s
    s.close()


def no_eos(server):
    """A per-request logit_bias that keeps the model from stopping (a long request)."""
    return {str(server.state.served.tokenizer.eos_token_id): -100}


def metric(server, name):
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def wait_until(predicate, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def calls_of(message):
    return [(c.function.name, c.function.arguments) for c in message.tool_calls or []]


def test_32_concurrent_streams(server):
    n = 32

    async def one(client, i):
        async with client.chat.completions.stream(model=server.model, messages=[{"role": "user", "content": f"request {i}"}],
                                                  tools=TOOLS, tool_choice="required", max_tokens=48, seed=i) as stream:
            async for _ in stream:
                pass
            return stream.current_completion_snapshot

    async def main():
        async with AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300) as client:
            return await asyncio.gather(*(one(client, i) for i in range(n)))

    steps_before = metric(server, "constrained_engine_steps_total")
    tokens_before = metric(server, "constrained_generation_tokens_total")
    t0 = time.time()
    results = asyncio.run(main())
    elapsed = time.time() - t0
    assert len(results) == n
    finished = 0
    for r in results:
        choice = r.choices[0]
        assert choice.finish_reason in ("tool_calls", "length")
        if choice.finish_reason == "tool_calls":
            finished += 1
            assert choice.message.content is None
            ids = [c.id for c in choice.message.tool_calls]
            assert len(set(ids)) == len(ids)
            for call in choice.message.tool_calls:
                jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    assert finished >= n - 2, [r.choices[0].finish_reason for r in results]
    # the requests shared forward passes: far fewer steps than tokens
    steps = metric(server, "constrained_engine_steps_total") - steps_before
    tokens = metric(server, "constrained_generation_tokens_total") - tokens_before
    assert tokens >= 2 * steps, (tokens, steps)
    print(f"32 streams: {elapsed:.1f}s, {tokens:.0f} tokens in {steps:.0f} steps")
    # batching does not change what a seeded request gets
    client = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)
    for i in (0, 5, 31):
        alone = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": f"request {i}"}],
                                               tools=TOOLS, tool_choice="required", max_tokens=48, seed=i)
        assert alone.choices[0].finish_reason == results[i].choices[0].finish_reason
        assert calls_of(alone.choices[0].message) == calls_of(results[i].choices[0].message)


def test_continuous_admission(server):
    """A short request sent while a long one streams is admitted into the running batch and
    finishes while the long one is still going (the long one is not waited for)."""
    client = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)
    body = {"model": server.model, "messages": [{"role": "user", "content": "long"}], "max_tokens": 5000, "stream": True,
            "tool_choice": "none", "logit_bias": no_eos(server)}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=120) as resp:
        chunks = (json.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: {"))
        while not next(chunks)["choices"][0]["delta"].get("content"):
            pass  # the long request is decoding once its text arrives
        assert httpx.get(server.url + "/health").json()["running"] == 1
        r = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": "short"}], tools=TOOLS, tool_choice="required",
                                           max_tokens=40)
        assert r.choices[0].finish_reason == "tool_calls"
        # the long request still runs: it was not waited for, and its stream goes on
        assert httpx.get(server.url + "/health").json()["running"] == 1
        assert next(chunks)["choices"][0]["finish_reason"] is None
    # leaving the stream disconnects the long request and frees its row
    assert wait_until(lambda: httpx.get(server.url + "/health").json()["running"] == 0, 20)


def test_disconnect_frees_the_row(server):
    before = metric(server, "constrained_requests_cancelled_total")
    body = {"model": server.model, "messages": [{"role": "user", "content": "ramble"}], "max_tokens": 5000, "stream": True, "tool_choice": "none",
            "logit_bias": no_eos(server)}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as resp:
        lines = 0
        for line in resp.iter_lines():
            lines += bool(line)
            if lines >= 3:
                break
    assert wait_until(lambda: httpx.get(server.url + "/health").json()["running"] == 0, 20)
    # non-streaming: the client times out and closes the connection
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/chat/completions", json={**body, "stream": False}, timeout=httpx.Timeout(60, read=1.0))
    assert wait_until(lambda: httpx.get(server.url + "/health").json()["running"] == 0, 20)
    assert metric(server, "constrained_requests_cancelled_total") >= before + 2
    r = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
        model=server.model, messages=[{"role": "user", "content": "hi"}], tools=TOOLS, tool_choice="required", max_tokens=40)
    assert r.choices[0].finish_reason == "tool_calls"


def test_full_queue_answers_429():
    s = DemoServer("kimi_k2", engine_config=EngineConfig(max_batch=1, max_queue=1, default_seed=0))
    try:
        body = {"model": s.model, "messages": [{"role": "user", "content": "ramble"}], "max_tokens": 5000, "stream": True, "tool_choice": "none",
                "logit_bias": no_eos(s)}
        health = lambda: httpx.get(s.url + "/health").json()  # noqa: E731
        with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=60) as running:
            assert running.status_code == 200
            assert wait_until(lambda: health()["running"] == 1)
            with httpx.stream("POST", s.url + "/v1/chat/completions", json=body, timeout=60) as queued:
                assert wait_until(lambda: health()["queue_depth"] == 1)
                resp = httpx.post(s.url + "/v1/chat/completions", json=body, timeout=60)
                assert resp.status_code == 429
                assert resp.headers["retry-after"] == "1"
                err = resp.json()["error"]
                assert "busy" in err["message"] and err["code"] == "queue_full"
                assert queued.status_code == 200
        assert wait_until(lambda: health()["running"] == 0 and health()["queue_depth"] == 0, 20)
        assert 'constrained_rejected_requests_total 1' in httpx.get(s.url + "/metrics").text
        r = OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0).chat.completions.create(
            model=s.model, messages=[{"role": "user", "content": "hi"}], tools=TOOLS, tool_choice="required", max_tokens=40)
        assert r.choices[0].finish_reason == "tool_calls"
    finally:
        s.close()


def test_jump_forward():
    """Jump-forward feeds grammar-forced text (the call's name, JSON keys) in one step: fewer
    steps than tokens for a single request, every call still valid, stream == non-stream."""
    s = DemoServer("kimi_k2", engine_config=EngineConfig(max_batch=8, default_seed=0, jump_forward=True))
    try:
        client = OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=120)
        kw = dict(model=s.model, messages=[{"role": "user", "content": "weather"}], tools=TOOLS, tool_choice="required", max_tokens=60)
        steps0 = metric(s, "constrained_engine_steps_total")
        r = client.chat.completions.create(**kw, seed=1)
        assert r.choices[0].finish_reason == "tool_calls"
        assert metric(s, "constrained_engine_steps_total") - steps0 < r.usage.completion_tokens
        assert metric(s, "constrained_jump_forward_tokens_total") > 0
        for call in r.choices[0].message.tool_calls:
            jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
        streamed = list(client.chat.completions.create(**kw, seed=1, stream=True))
        args = "".join(tc.function.arguments or "" for c in streamed for tc in c.choices[0].delta.tool_calls or [])
        assert args == "".join(c.function.arguments for c in r.choices[0].message.tool_calls)

        async def many():
            async with AsyncOpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=300) as c:
                return await asyncio.gather(*(c.chat.completions.create(**kw, seed=i) for i in range(12)))

        batch = asyncio.run(many())  # rows jump by different amounts within one forward
        for res in batch:
            assert res.choices[0].finish_reason in ("tool_calls", "length")
            for call in res.choices[0].message.tool_calls or []:
                jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
        for i in (0, 3, 7):
            alone = client.chat.completions.create(**kw, seed=i)
            assert calls_of(alone.choices[0].message) == calls_of(batch[i].choices[0].message)
    finally:
        s.close()


def test_drain_mode_and_batch_limit():
    """--no-continuous: new requests wait until the running batch drains; never more rows than
    max_batch."""
    s = DemoServer("kimi_k2", engine_config=EngineConfig(max_batch=2, continuous=False, default_seed=0))
    try:
        seen = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                seen.append(httpx.get(s.url + "/health").json()["running"])
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()

        async def many():
            async with AsyncOpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=300) as c:
                return await asyncio.gather(*(c.chat.completions.create(
                    model=s.model, messages=[{"role": "user", "content": f"r{i}"}], tools=TOOLS, tool_choice="required", max_tokens=40, seed=i)
                    for i in range(5)))

        results = asyncio.run(many())
        stop.set()
        watcher.join()
        assert max(seen) <= 2
        for r in results:
            assert r.choices[0].finish_reason in ("tool_calls", "length")
            for call in r.choices[0].message.tool_calls or []:
                jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    finally:
        s.close()
