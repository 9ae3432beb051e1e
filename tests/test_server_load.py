"""Long streams cost the same per token as short ones (issue 11, item 2): with the text of each
token decoded incrementally, the streaming parser's scan incremental, and parsing / validation off
the event loop, 16 concurrent streams whose arguments run long keep a p99 inter-token latency
within 2x of 16 streams of 100 tokens.

Two measures, each a ratio of runs in one test (speed itself is a benchmark's):
- the event loop's own work per token, as thread CPU time (immune to what else the shared machine
  runs): decoding the token, releasing safe text, feeding the streaming parser, in the steady state
  of each stream's arguments; its p50 and p90 for long streams stay within 2x of short ones, and
  the long streams' last quarter within 2x of their first. A parser that rescans the whole text
  at each token fails here (checked once by hand, 600 tokens: parse p50 193 us long vs 77 us short);
- the wall-clock gap between argument deltas as the client sees it, runs interleaved (short, long,
  short): the long run's p99 within 2x of the worse short run's. On the demo model this gap is the
  engine's step (~40 ms for 16 rows on 2 CPU cores), so it is the weaker of the two checks.

The long streams are `LOAD_LONG` tokens: default 600 (the test takes ~40-55 s on 2 shared CPU
cores); `LOAD_LONG=4000` runs issue 11's full length (a few minutes there).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import defaultdict

import httpx
import numpy as np
import pytest

from constrained import demo
from constrained.parsing import StreamingParser
from constrained.server import chat
from constrained.server.testing import DemoServer
from constrained.server.text import TextTracker

LONG = int(os.environ.get("LOAD_LONG", 600))
SHORT = 100
PARTS = ("decode", "release", "parse")
STREAMS = 16
SLACK_US = 5.0  # microseconds of CPU time per token below which differences are noise
NOTE = {"type": "function", "function": {"name": "write_note", "parameters": {
    "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}


class Work:
    """Thread CPU time the event loop spends per token in the parts whose cost could grow with the
    text: decoding the token (`TextTracker.add`), releasing safe text (`TextTracker.update`), and
    the streaming parser's `feed`. Kept per stream, so that the work of a call's first and last
    tokens (its header, its close) can be set apart from the steady state of its arguments."""

    HEAD, TAIL = 20, 5  # tokens at each end of a stream left out of the steady state

    def __init__(self):
        self.samples: dict[str, list[list[float]]] = defaultdict(list)  # part -> one list per stream

    def timed(self, name: str, fn):
        streams, attr = self.samples[name], "_work_" + name

        def wrapper(obj, *args, **kwargs):
            t0 = time.thread_time()
            try:
                return fn(obj, *args, **kwargs)
            finally:
                spent = time.thread_time() - t0
                if attr not in obj.__dict__:
                    setattr(obj, attr, [])
                    streams.append(getattr(obj, attr))
                getattr(obj, attr).append(spent)

        return wrapper

    def take(self) -> dict[str, list[np.ndarray]]:
        """-> per part, the steady-state samples of each stream since the last take."""
        out = {name: [np.array(s[self.HEAD : len(s) - self.TAIL]) for s in streams] for name, streams in self.samples.items()}
        for streams in self.samples.values():
            streams.clear()
        return out


def _all(streams: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(streams)


def _quarter(streams: list[np.ndarray], last: bool) -> np.ndarray:
    """The first (or last) quarter of each stream's steady state, together."""
    return np.concatenate([s[len(s) * 3 // 4 :] if last else s[: len(s) // 4] for s in streams])


@pytest.fixture(scope="module")
def server():
    tok = demo.load_tokenizer("kimi_k2")
    # the model as it is, except that it never opens a think block
    s = DemoServer("kimi_k2", bias={tok.convert_tokens_to_ids("<think>"): -30.0})
    # tokens with a quote down (those with two more so, or the string would open and close in one
    # token): the model opens the string and never closes it, the budget closes it at the end
    s.quote_bias = {str(i): -50.0 * min(b.count(b'"'), 2) for i, b in enumerate(s.state.cache.decoded_vocab) if b'"' in b}
    yield s
    s.close()


@pytest.fixture
def work(monkeypatch):
    w = Work()

    class TimedTracker(TextTracker):
        add = w.timed("decode", TextTracker.add)
        update = w.timed("release", TextTracker.update)

    class TimedParser(StreamingParser):
        feed = w.timed("parse", StreamingParser.feed)

    monkeypatch.setattr(chat, "TextTracker", TimedTracker)
    monkeypatch.setattr(chat, "StreamingParser", TimedParser)
    return w


async def _stream(client: httpx.AsyncClient, server, max_tokens: int, seed: int) -> tuple[list[float], str, dict]:
    body = {"model": server.model, "messages": [{"role": "user", "content": f"Write a long note {seed}."}], "tools": [NOTE],
            "tool_choice": "required", "max_tokens": max_tokens, "seed": seed, "stream": True, "logit_bias": server.quote_bias}
    times, arguments, last = [], [], {}
    async with client.stream("POST", server.url + "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if not chunk.get("choices"):
                continue
            for call in chunk["choices"][0]["delta"].get("tool_calls") or []:
                arguments.append(call["function"].get("arguments") or "")
                times.append(time.perf_counter())
            last = chunk
    return times, "".join(arguments), last


def _run(server, max_tokens: int, seed0: int) -> tuple[np.ndarray, list]:
    async def main():
        async with httpx.AsyncClient(timeout=3600) as client:
            return await asyncio.gather(*(_stream(client, server, max_tokens, seed0 + i) for i in range(STREAMS)))

    results = asyncio.run(main())
    for times, arguments, last in results:
        assert last["choices"][0]["finish_reason"] == "length"
        assert len(json.loads(arguments)["text"]) > 0.5 * max_tokens  # complete JSON arguments, closed by the budget
        assert len(times) > 0.75 * max_tokens  # an argument delta for (nearly) every token: nothing held back
    # the gaps from the second argument delta on (the first waits for every row's prefill)
    return np.concatenate([np.diff(times[1:]) for times, _, _ in results]), results


def _ms(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q) * 1e3)


def _us(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q) * 1e6)


def test_long_streams_keep_the_per_token_latency_of_short_ones(server, work):
    body = {"model": server.model, "messages": [{"role": "user", "content": "warm up"}], "tools": [NOTE], "tool_choice": "required", "max_tokens": 30}
    httpx.post(server.url + "/v1/chat/completions", json=body, timeout=300).raise_for_status()  # the grammar compiled, caches filled
    work.take()
    short1, _ = _run(server, SHORT, 0)
    work_short = work.take()
    long, _ = _run(server, LONG, 100)
    work_long = work.take()
    short2, _ = _run(server, SHORT, 200)
    more = work.take()
    work_short = {k: v + more[k] for k, v in work_short.items()}

    lines = [f"{STREAMS} streams, {SHORT} vs {LONG} tokens"]
    for name in PARTS:
        s, lo = _all(work_short[name]), _all(work_long[name])
        lines.append(f"  event-loop work per token, {name}: p50 / p90 / p99 short {_us(s, 50):.1f} / {_us(s, 90):.1f} / {_us(s, 99):.1f} us, "
                     f"long {_us(lo, 50):.1f} / {_us(lo, 90):.1f} / {_us(lo, 99):.1f} us; long streams' first / last quarter p50 "
                     f"{_us(_quarter(work_long[name], False), 50):.1f} / {_us(_quarter(work_long[name], True), 50):.1f} us")
    lines.append(f"  inter-token gap p50 / p99: short {_ms(short1, 50):.1f} / {_ms(short1, 99):.1f} and {_ms(short2, 50):.1f} / "
                 f"{_ms(short2, 99):.1f} ms, long {_ms(long, 50):.1f} / {_ms(long, 99):.1f} ms")
    print("\n" + "\n".join(lines))
    for name in PARTS:
        s, lo = _all(work_short[name]), _all(work_long[name])
        assert len(lo) >= STREAMS * (LONG * 0.75 - Work.HEAD - Work.TAIL)
        # per token, the work does not grow with the text. Its p99 is a few microseconds of CPU time,
        # where a garbage collection or a cache miss decides (measured on CI: 55 vs 26 us), so the
        # checks are the bulk (p50, p90) against short streams, plus SLACK_US of timer and cache
        # noise, and the long streams' own last quarter against their first: a whole-text rescan
        # costs 5x more at token 500 than at token 100
        assert _us(lo, 50) <= 2 * _us(s, 50) + SLACK_US, name
        assert _us(lo, 90) <= 2 * _us(s, 90) + SLACK_US, name
        first, last = _quarter(work_long[name], False), _quarter(work_long[name], True)
        assert _us(last, 50) <= 2 * _us(first, 50) + SLACK_US, name
        assert _us(last, 90) <= 2 * _us(first, 90) + SLACK_US, name
    # what the client sees: the gap between argument deltas, tail included
    assert _ms(long, 99) <= 2 * max(_ms(short1, 99), _ms(short2, 99))
