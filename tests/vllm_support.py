"""Shared by tests/test_vllm_*.py: vLLM's CPU build (its own environment, `.venv-vllm`, made by
scripts/install-vllm.sh) serving the demo checkpoint with the plug-in, one server per test module;
request loops with the official `openai` SDK, and the checks every response must pass.

The tests skip only where that environment is absent and CONSTRAINED_REQUIRE_VLLM is not set (CI
sets it after building the environment, so there a missing vLLM fails instead).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from corpus import TOOLS

from constrained import dialect as registry
from constrained.errors import ToolSpecError, UnsupportedSchemaError
from constrained.grammar import GrammarOptions, prepare_tools
from constrained.integrations.vllm.launch import DEMO_ENV, NUDGE_ENV, VLLMServer, demo_checkpoint, free_port, serve_args, vllm_python
from constrained.parsing import parse
from constrained.types import ToolChoice, as_tools
from constrained.validation import call_violations

REQUIRE_ENV = "CONSTRAINED_REQUIRE_VLLM"
MODEL = "demo"
# what the hidden tool sets look like: MCP names with '-' and '.', recursive $ref, unicode enums
HIDDEN_STYLE = ("github.create-issue", "fs.read-file", "recursive_tree", "unicode_args", "ref_defs", "math.factorial")


def python_or_skip() -> str:
    python = vllm_python()
    if python and Path(python).exists():
        return python
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{REQUIRE_ENV} is set but there is no vLLM environment (.venv-vllm: bash scripts/install-vllm.sh)")
    pytest.skip("no vLLM environment (.venv-vllm: bash scripts/install-vllm.sh)")


def start_server(tmp_path_factory: Any, dialect: str, *, parser: str | None = None, extra_dialects: Sequence[str] = (),
                 extra_args: Sequence[str] = (), via_cli: bool = False, cli_args: Sequence[str] = ()) -> VLLMServer:
    """vLLM on the demo checkpoint of `dialect` with our parsers (`parser="constrained"`: the
    dialect per request, the tokenizer has `extra_dialects`' markers too) and the demo nudge.
    `via_cli`: started as users do, `constrained serve --engine vllm --demo-nudge CLI_ARGS -- EXTRA`."""
    python = python_or_skip()
    home = tmp_path_factory.mktemp(f"vllm-{dialect}")
    port = free_port()
    if via_cli:
        ckpt = demo_checkpoint(dialect)  # where the command finds (or makes) it
        args = ["-m", "constrained.cli", "serve", "--engine", "vllm", "--vllm-python", python, "--dialect", dialect, "--demo-nudge",
                "--port", str(port), "--served-model-name", MODEL, *cli_args, "--", *extra_args]
        server = VLLMServer(sys.executable, args, log=home / "vllm.log", port=port)
    else:
        ckpt = demo_checkpoint(dialect, home / "ckpt", extra_dialects=extra_dialects)
        args = serve_args(ckpt, parser or dialect, port=port, served_model_name=MODEL, max_num_seqs=16, demo=True, nudge=True, extra=extra_args)
        server = VLLMServer(python, args, env={**DEMO_ENV, NUDGE_ENV: dialect}, log=home / "vllm.log")
    server.checkpoint = ckpt  # type: ignore[attr-defined]
    return server.start(timeout=900)


def server_fixtures(dialect: str, **start: Any) -> tuple:
    """The module's fixtures: `server` (started once, `start_server` with these arguments),
    `tokenizer` (the checkpoint's) and `client` (the `openai` SDK)."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory):
        s = start_server(tmp_path_factory, dialect, **start)
        yield s
        s.stop()

    @pytest.fixture(scope="module")
    def tokenizer(server):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(server.checkpoint)

    @pytest.fixture(scope="module")
    def client(server):
        import httpx2
        from openai import DefaultHttpxClient, OpenAI

        # vLLM's HTTP server closes a connection idle for 5 s; a request sent on it at that moment
        # fails with "Server disconnected" (no retries here). Letting idle connections go after 2 s
        # was not enough on a loaded machine (CI, 2026-12-03: the client read a response late, so
        # the connection was older than it knew; the server had answered all 3,509 requests 200).
        # So no connection is reused: a new one per request costs nothing next to a generation.
        http = DefaultHttpxClient(limits=httpx2.Limits(max_connections=64, max_keepalive_connections=0))
        return OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300, http_client=http)

    return server, tokenizer, client


def writable_tools(dialect: str) -> list[dict]:
    """The corpus tools the dialect can write (names, argument names)."""
    d = registry.get(dialect)
    out = []
    for tool in TOOLS:
        try:
            prepare_tools(d, [tool])
        except (ToolSpecError, UnsupportedSchemaError):
            continue
        out.append(tool)
    return out


def tool_sets(dialect: str, n: int, size: int = 5) -> list[list[dict]]:
    """n tool sets of `size`: every hidden-style tool the dialect can write, plus others in turn."""
    tools = writable_tools(dialect)
    hidden = [t for t in tools if t["function"]["name"] in HIDDEN_STYLE]
    others = [t for t in tools if t not in hidden]
    sets = []
    for i in range(n):
        extra = [others[(i * 2 + k) % len(others)] for k in range(max(0, size - len(hidden)))] if others else []
        sets.append(hidden[: size] + extra)
    return sets


@dataclass
class Reply:
    tools: list[dict]
    choice: Any
    first_index: int
    stream: bool
    finish_reason: str | None
    content: str | None
    reasoning: str | None
    calls: list[dict]
    token_ids: list[int]
    deltas: list[dict] = field(default_factory=list)  # streamed tool-call deltas, in order


def _history(first_index: int) -> list[dict]:
    """A conversation with `first_index` earlier tool calls (ids as the client got them)."""
    if not first_index:
        return [{"role": "user", "content": "Use the tools."}]
    calls = [{"id": f"call_{k}", "type": "function", "function": {"name": "fs.read-file", "arguments": json.dumps({"path": f"/tmp/{k}"})}}
             for k in range(first_index)]
    return [{"role": "user", "content": "Read the files."}, {"role": "assistant", "content": None, "tool_calls": calls},
            *({"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls), {"role": "user", "content": "Use the tools."}]


def choice(kind: str) -> Any:
    """`choice_for` of `ask_many`: "named" names each tool of the set in turn."""
    if kind == "named":
        return lambda tools, i: {"type": "function", "function": {"name": tools[i % len(tools)]["function"]["name"]}}
    return lambda tools, i: kind


def ask(client: Any, tools: list[dict], choice: Any, *, stream: bool = False, dialect: str | None = None, first_index: int = 0, seed: int = 0,
        max_tokens: int = 160, parallel: bool | None = None) -> Reply:
    xargs = {"constrained_dialect": dialect} if dialect else {}
    kwargs: dict[str, Any] = dict(model=MODEL, messages=_history(first_index), tools=tools, tool_choice=choice, max_tokens=max_tokens, seed=seed,
                                  temperature=1.0, extra_body={"return_token_ids": True, "vllm_xargs": xargs})
    if parallel is not None:
        kwargs["parallel_tool_calls"] = parallel
    if not stream:
        r = client.chat.completions.create(**kwargs)
        ch = r.choices[0]
        calls = [{"id": c.id, "type": c.type, "function": {"name": c.function.name, "arguments": c.function.arguments}} for c in ch.message.tool_calls or []]
        return Reply(tools, choice, first_index, False, ch.finish_reason, ch.message.content, (ch.message.model_extra or {}).get("reasoning"), calls,
                     list((ch.model_extra or {}).get("token_ids") or []))
    acc: dict[int, dict] = {}
    deltas, content, reasoning, token_ids, finish = [], "", "", [], None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        if not chunk.choices:
            continue
        c0 = chunk.choices[0]
        token_ids += (c0.model_extra or {}).get("token_ids") or []
        finish = c0.finish_reason or finish
        content += c0.delta.content or ""
        reasoning += (c0.delta.model_extra or {}).get("reasoning") or ""
        for tc in c0.delta.tool_calls or []:
            deltas.append(tc.model_dump(exclude_unset=True))
            a = acc.setdefault(tc.index, {"id": "", "type": "", "function": {"name": "", "arguments": ""}})
            a["id"] += tc.id or ""
            a["type"] += tc.type or ""
            a["function"]["name"] += (tc.function.name or "") if tc.function else ""
            a["function"]["arguments"] += (tc.function.arguments or "") if tc.function else ""
    return Reply(tools, choice, first_index, True, finish, content or None, reasoning or None, [acc[i] for i in sorted(acc)], token_ids, deltas)


def ask_many(client: Any, n: int, dialect: str, choice_for: Any, *, stream: bool = False, per_request_dialect: bool = False, workers: int = 8,
             **kwargs: Any) -> list[Reply]:
    """n requests, `workers` at a time, request i with tool set i and seed i; `choice_for(tools, i)`."""
    sets = tool_sets(dialect, n)
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(ask, client, sets[i], choice_for(sets[i], i), stream=stream, dialect=dialect if per_request_dialect else None,
                               seed=i, **kwargs) for i in range(n)]
        return [f.result() for f in futures]


# -- checks ----------------------------------------------------------------------------------------
def replay(tokenizer: Any, dialect: str, reply: Reply, parallel: bool = True) -> None:
    """The returned tokens, replayed through OUR matcher (marker vocabulary, same options): vLLM
    produced exactly our grammar, and a response that ended on its own ended where the grammar may."""
    from constrained.compiler import grammar_cache
    from constrained.guards import matcher as guarded_matcher

    d = registry.get(dialect)
    options = GrammarOptions(tool_choice=reply.choice, parallel_tool_calls=parallel, first_index=reply.first_index)
    compiled = grammar_cache(tokenizer).compile(d, reply.tools, options).grammar
    matcher = guarded_matcher(compiled, override_stop_tokens=[tokenizer.eos_token_id])
    for i, t in enumerate(reply.token_ids):
        assert matcher.accept_token(t), f"token {i} ({tokenizer.convert_ids_to_tokens([t])}) is outside our grammar: {tokenizer.decode(reply.token_ids)!r}"
    if ended(tokenizer, reply):
        assert matcher.is_terminated(), f"ended ({reply.finish_reason}) where our grammar may not: {tokenizer.decode(reply.token_ids)!r}"


def ended(tokenizer: Any, reply: Reply) -> bool:
    """Did the model stop (EOS), rather than max_tokens? (vLLM reports `tool_calls` for an `auto`
    turn cut after a complete call, so finish_reason does not say.)"""
    return bool(reply.token_ids) and reply.token_ids[-1] == tokenizer.eos_token_id


def check(tokenizer: Any, dialect: str, replies: Sequence[Reply], *, parallel: bool = True, complete: bool = True) -> dict:
    """Every call parses and validates, ids follow the dialect, the output is in our grammar,
    required/named turns called; streamed deltas keep the contract and join to the calls our
    parser reads from the streamed tokens. `complete`: every output ended on its own (EOS) within
    its max_tokens, as the budget processor guarantees (vllm/budget.py). Returns counts."""
    d = registry.get(dialect)
    calls = finished = 0
    for r in replies:
        mode = ToolChoice.parse(r.choice)
        replay(tokenizer, dialect, r, parallel)
        if complete:
            assert ended(tokenizer, r), f"cut by max_tokens ({len(r.token_ids)} tokens): {tokenizer.decode(r.token_ids)!r}"
        names = {t["function"]["name"] for t in r.tools}
        done = r.calls
        if r.stream and not ended(tokenizer, r) and done and not _is_json_object(done[-1]["function"]["arguments"]):
            done = done[:-1]  # cut mid-call by max_tokens: a stream cannot take back what it sent
        assert call_violations(done, as_tools(r.tools)) == [], r
        for k, c in enumerate(done):
            assert c["function"]["name"] in names and c["type"] == "function"
            assert isinstance(json.loads(c["function"]["arguments"]), dict)
            if not d.fresh_call_ids:
                assert c["id"] == d.make_call_id(c["function"]["name"], r.first_index + k)
            elif d.call_id == "alnum9":
                assert re.fullmatch("[A-Za-z0-9]{9}", c["id"]), c["id"]
            else:
                assert c["id"]
        assert len({c["id"] for c in r.calls}) == len(r.calls)
        if mode.mode == "named":
            assert all(c["function"]["name"] == mode.name for c in r.calls)
        if ended(tokenizer, r):
            assert r.finish_reason != "length"
            finished += 1
            if mode.mode in ("required", "named"):
                assert r.calls, f"tool_choice {mode.mode} ended ({r.finish_reason}) without a call: {r}"
        if not parallel:
            assert len(r.calls) <= 1
        if r.stream:
            _check_stream(tokenizer, d, r)
        calls += len(done)
    return {"replies": len(replies), "finished": finished, "calls": calls}


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _check_stream(tokenizer: Any, d: Any, r: Reply) -> None:
    seen: dict[int, int] = {}
    for delta in r.deltas:
        i = delta["index"]
        if i not in seen:
            assert set(delta) == {"index", "id", "type", "function"} and delta["function"] == {"name": delta["function"]["name"], "arguments": ""}, delta
            assert i == len(seen), f"calls are streamed in order, one after another: {r.deltas}"
        else:
            assert set(delta) == {"index", "function"} and set(delta["function"]) == {"arguments"}, delta
            assert i == max(seen), f"a call's fragments come before the next call opens: {r.deltas}"
        seen[i] = seen.get(i, 0) + 1
    text = tokenizer.decode([t for t in r.token_ids if t != tokenizer.eos_token_id], skip_special_tokens=False)
    if ended(tokenizer, r):
        ours = parse(text, d, r.tools, r.first_index).tool_calls  # the xml encoding reads values by their schemas
        key = (lambda c: (c["function"]["name"], c["function"]["arguments"])) if d.fresh_call_ids else (lambda c: (c["id"], c["function"]["name"], c["function"]["arguments"]))
        assert [key(c) for c in r.calls] == [key(c) for c in ours], (r.calls, text)  # random ids are new on each parse
