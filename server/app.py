"""OpenAI-compatible HTTP API over the batching engine.

Endpoints: POST /v1/chat/completions (tools, tool_choice, parallel_tool_calls, response_format,
streaming), POST /v1/completions (raw prompt, no grammar), GET /v1/models, GET /health, GET /metrics.

Non-standard, documented: every chat completion (and the last choice chunk of a stream) carries a
top-level `"constrained"` object: `{"dialect", "violations": [...], "grammar_compile_ms",
"grammar_cache_hit"}`. `violations` lists what jsonschema found wrong in the calls for keywords the
grammar does not enforce (empty almost always); the OpenAI SDK ignores unknown fields.
Messages may carry `reasoning_content` (the dialect's think block), as vLLM and SGLang do.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from constrained.chat import prepare_history, render_prompt
from constrained.compiler import eos_token_ids, grammar_cache
from constrained.errors import ToolSpecError
from constrained.grammar import GrammarOptions, content_from_response_format, tool_function
from constrained.parsing import ParseResult, StreamingParser, parse
from constrained.schema import UnsupportedSchemaError
from constrained.validation import call_violations

from .engine import AsyncSink, Engine, EngineConfig, EngineStopped, GenerationRequest, QueueFull
from .loader import Served
from .protocol import ApiError, ChatCompletionRequest, CompletionRequest, validation_error
from .text import TextTracker

log = logging.getLogger("constrained.server")

SYSTEM_FINGERPRINT = "constrained-0.1"


@dataclass
class ServerConfig:
    api_key: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    default_max_tokens: int = 1024
    aliases: tuple[str, ...] = ()
    # tool arguments: "forbid" undeclared properties, or follow the "schema" (constrained.schema)
    additional_properties: str = "forbid"


@dataclass
class Metrics:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict = field(default_factory=dict)  # (path, status) -> count
    latency_sum: float = 0.0
    latency_count: int = 0
    ttft_sum: float = 0.0
    ttft_count: int = 0
    completion_tokens: int = 0
    prompt_tokens: int = 0
    tool_calls: int = 0
    violations: int = 0
    rejected_queue_full: int = 0

    def count(self, path: str, status: int) -> None:
        with self.lock:
            key = (path, status)
            self.requests[key] = self.requests.get(key, 0) + 1

    def finished(self, req: GenerationRequest, prompt_tokens: int, completion_tokens: int, calls: int = 0, violations: int = 0) -> None:
        now = time.perf_counter()
        with self.lock:
            self.latency_sum += now - req.submitted
            self.latency_count += 1
            if req.first_token_at is not None:
                self.ttft_sum += req.first_token_at - req.submitted
                self.ttft_count += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            self.tool_calls += calls
            self.violations += violations


class ServerState:
    """The model, its grammar cache, the engine and the counters behind one app."""

    def __init__(self, served: Served, engine_config: EngineConfig | None = None, config: ServerConfig | None = None):
        self.served = served
        self.config = config or ServerConfig()
        self.tokenizer = served.tokenizer
        self.dialect = served.dialect
        self.cache = grammar_cache(served.tokenizer, served.vocab_size)
        self.stop_ids = eos_token_ids(served.tokenizer, served.model)
        self.hidden_ids = set(self.stop_ids) | ({served.tokenizer.pad_token_id} if served.tokenizer.pad_token_id is not None else set())
        self.engine = Engine(
            served.model, served.tokenizer, vocab_size=served.vocab_size, stop_token_ids=self.stop_ids,
            max_context=served.max_context, config=engine_config,
        ).start()
        self.metrics = Metrics()
        self.created = int(time.time())
        self.names = (served.name, *self.config.aliases)
        self._token_text: dict[int, str] = {}
        # warm the compiler (TokenizerInfo is built above): the first request compiles in ms, not tens of ms
        self.cache.warm(self.dialect)

    def close(self) -> None:
        self.engine.shutdown()

    def token_text(self, token_id: int) -> str:
        s = self._token_text.get(token_id)
        if s is None:
            s = self.tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            self._token_text[token_id] = s
        return s


def build_state(model: str | None = None, dialect: str | None = "auto", *, engine_config: EngineConfig | None = None,
                config: ServerConfig | None = None, served_name: str | None = None, device: str = "auto") -> ServerState:
    from .loader import load

    return ServerState(load(model, dialect, served_name=served_name, device=device), engine_config, config)


# ---------------------------------------------------------------------------------- helpers
def _err(status: int, message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None, headers=None) -> JSONResponse:
    return JSONResponse(ApiError(status, message, type=type, param=param, code=code).body(), status_code=status, headers=headers)


async def read_json(request: Request, limit: int) -> dict:
    declared = request.headers.get("content-length")
    too_big = False
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise ApiError(400, "invalid Content-Length header", code="invalid_request") from None
    body = bytearray()
    drained = 0
    async for chunk in request.stream():
        if too_big or len(body) + len(chunk) > limit:
            too_big = True
            drained += len(chunk)
            if drained > 16 * limit:  # stop reading a flood; the connection is dropped
                break
            continue
        body += chunk
    if too_big:
        raise ApiError(413, f"request body is larger than the limit of {limit} bytes", code="request_too_large")
    if not body.strip():
        raise ApiError(400, "request body is empty; expected a JSON object", code="invalid_json")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise ApiError(400, f"request body is not valid JSON: {err}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    return data


def _check_model(state: ServerState, name: str) -> None:
    if name not in state.names:
        raise ApiError(404, f"The model {name!r} does not exist; this server serves {', '.join(repr(n) for n in state.names)}", param="model", code="model_not_found")


def _seed(seed: int | None) -> int | None:
    return None if seed is None else seed & ((1 << 64) - 1)


def _bias(state: ServerState, bias: dict | None) -> dict[int, float] | None:
    if not bias:
        return None
    out = {}
    for key, value in bias.items():
        tid = int(key)
        if not 0 <= tid < state.served.vocab_size:
            raise ApiError(400, f"logit_bias token id {tid} is outside the vocabulary (0..{state.served.vocab_size - 1})", param="logit_bias", code="invalid_value")
        out[tid] = float(value)
    return out


def _max_tokens(state: ServerState, asked: int | None, prompt_len: int) -> int:
    room = state.served.max_context - prompt_len
    if room < 1:
        raise ApiError(400, f"the prompt is {prompt_len} tokens; this model's context is {state.served.max_context} tokens", param="messages", code="context_length_exceeded")
    return min(asked if asked is not None else state.config.default_max_tokens, room)


def _submit(state: ServerState, greq: GenerationRequest) -> None:
    try:
        state.engine.submit(greq)
    except QueueFull as err:
        with state.metrics.lock:
            state.metrics.rejected_queue_full += 1
        raise ApiError(429, str(err), type="server_overloaded", code="queue_full", headers={"Retry-After": "1"}) from None
    except EngineStopped as err:
        raise ApiError(503, str(err), type="server_error", code="unavailable") from None


async def _watch_disconnect(request: Request, greq: GenerationRequest) -> None:
    """Non-streaming requests: free the slot when the client goes away."""
    try:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                greq.cancel()
                return
    except Exception:
        return


async def _run_to_end(request: Request, greq: GenerationRequest, run: "_Run") -> None:
    """Wait for a non-streamed generation, freeing its row if the client goes away."""
    watcher = asyncio.ensure_future(_watch_disconnect(request, greq))
    try:
        async for _ in run.events():
            pass
    finally:
        watcher.cancel()
        greq.cancel()
    if run.error:
        raise ApiError(500, run.error, type="server_error", code="generation_failed")


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


# ---------------------------------------------------------------------------------- chat
@dataclass
class ChatJob:
    req: ChatCompletionRequest
    prompt_ids: list[int]
    grammar: Any
    tools: list[dict]
    first_index: int
    compile_ms: float
    cache_hit: bool
    max_tokens: int


def _tool_error(err: Exception, req: ChatCompletionRequest) -> ApiError:
    if isinstance(err, UnsupportedSchemaError):
        tool = getattr(err, "tool", None)
        where = "response_format" if tool == "response_format" else (f"tool {tool!r}" if tool else "a tool")
        param = "response_format" if tool == "response_format" else None
        if tool and tool != "response_format":
            names = [t["function"]["name"] for t in req.tool_dicts()]
            param = f"tools[{names.index(tool)}].function.parameters" if tool in names else "tools"
        return ApiError(400, f"{where}: unsupported JSON Schema keyword {err.keyword!r} at {err.path}: {err.reason}", param=param, code="unsupported_schema")
    assert isinstance(err, ToolSpecError)
    message = str(err) if not err.param or err.param in str(err) else f"{err.param}: {err}"
    return ApiError(400, message, param=err.param, code="invalid_tools" if (err.param or "").startswith("tool") else "invalid_value")


def prepare_chat(state: ServerState, req: ChatCompletionRequest) -> ChatJob:
    """Validate history and tools, compile the grammar and tokenize the prompt (a worker thread)."""
    d = state.dialect
    tools = req.tool_dicts()
    try:
        history = prepare_history(req.message_dicts(), d)
        content_schema, content_policy = content_from_response_format(req.response_format.as_dict() if req.response_format else None)
        options = GrammarOptions(
            tool_choice=req.tool_choice_value(),
            parallel_tool_calls=True if req.parallel_tool_calls is None else req.parallel_tool_calls,
            first_index=history.calls_so_far,
            content_schema=content_schema,
            additional_properties=state.config.additional_properties,
            content_additional_properties=content_policy,
        )
        hits = state.cache.stats.cache_hits
        t0 = time.perf_counter()
        grammar = state.cache.compile(d, tools, options)
        compile_ms = (time.perf_counter() - t0) * 1000
        cache_hit = state.cache.stats.cache_hits > hits
    except (UnsupportedSchemaError, ToolSpecError) as err:
        raise _tool_error(err, req) from None
    if state.served.use_chat_template:
        try:
            prompt = state.tokenizer.apply_chat_template(
                history.messages, tools=[{"type": "function", "function": dict(tool_function(t))} for t in tools] or None,
                add_generation_prompt=True, tokenize=False,
            )
        except Exception as err:  # jinja raises on histories the template rejects
            raise ApiError(400, f"the model's chat template rejected the messages: {err}", param="messages", code="invalid_messages") from None
    else:
        prompt = render_prompt(d, history, tools)
    ids = state.tokenizer.encode(prompt, add_special_tokens=False)
    return ChatJob(req, ids, grammar, tools, history.calls_so_far, compile_ms, cache_hit, _max_tokens(state, req.limit(), len(ids)))


def _chat_logprob(state: ServerState, token_id: int, entry) -> dict:
    lp, top = entry
    s = state.token_text(token_id)
    return {
        "token": s, "logprob": lp, "bytes": list(s.encode("utf-8", "replace")),
        "top_logprobs": [{"token": state.token_text(t), "logprob": v, "bytes": list(state.token_text(t).encode("utf-8", "replace"))} for t, v in top],
    }


def _finish_reason(engine_reason: str, calls: int) -> str:
    if engine_reason == "length":
        return "length"
    return "tool_calls" if calls else "stop"


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Run:
    """Consume one request's engine events; shared by streaming and non-streaming."""

    def __init__(self, state: ServerState, greq: GenerationRequest, sink: AsyncSink, tracker: TextTracker):
        self.state, self.greq, self.sink, self.tracker = state, greq, sink, tracker
        self.completion_tokens = 0
        self.reason: str | None = None
        self.error: str | None = None
        self.logprobs: list = []

    async def events(self) -> AsyncIterator[str]:
        """Yields newly safe text (possibly "") per token; sets reason/error at the end."""
        while True:
            event = await self.sink.get()
            if event[0] == "token":
                _, tok, entry = event
                self.completion_tokens += 1
                if entry is not None:
                    self.logprobs.append((tok, entry))
                self.tracker.add(tok)
                new = self.tracker.update()
                if self.tracker.stopped:
                    self.greq.cancel()
                    self.reason = "stop"
                    yield new
                    return
                yield new
            else:
                _, reason, error = event
                if reason == "error":
                    self.error = error or "generation failed"
                self.reason = reason
                tail = self.tracker.update(final=True)
                if tail:
                    yield tail
                return


async def _read_request(state: ServerState, request: Request, model_cls: Any) -> Any:
    """Body -> validated request model for a served model (400/404 naming the problem)."""
    body = await read_json(request, state.config.max_body_bytes)
    try:
        req = model_cls.model_validate(body)
    except ValidationError as err:
        raise validation_error(err) from None
    if hasattr(req, "check"):
        req.check()
    _check_model(state, req.model)
    return req


async def chat_completions(state: ServerState, request: Request) -> Response:
    req = await _read_request(state, request, ChatCompletionRequest)
    job = await run_in_threadpool(prepare_chat, state, req)
    sink = AsyncSink()
    greq = GenerationRequest(
        job.prompt_ids, max_tokens=job.max_tokens, grammar=job.grammar,
        temperature=1.0 if req.temperature is None else req.temperature, top_p=1.0 if req.top_p is None else req.top_p,
        seed=_seed(req.seed), logit_bias=_bias(state, req.logit_bias),
        logprobs=(req.top_logprobs or 0) if req.logprobs else None, sink=sink,
    )
    _submit(state, greq)
    tracker = TextTracker(state.tokenizer, state.hidden_ids, req.stop_list(), guard=state.dialect.trigger)
    run = _Run(state, greq, sink, tracker)
    cid = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    if req.stream:
        return StreamingResponse(_stream_chat(state, job, run, cid, created), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await _run_to_end(request, greq, run)
    result = parse(tracker.text, state.dialect, tools=job.tools or None, first_index=job.first_index)
    if run.reason == "length":
        result = _cut_off(state, job, tracker.text)
    reason = _finish_reason(run.reason or "stop", len(result.tool_calls))
    message = result.message()
    state.metrics.finished(greq, len(job.prompt_ids), run.completion_tokens, len(result.tool_calls), len(result.violations))
    out = {
        "id": cid, "object": "chat.completion", "created": created, "model": req.model, "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{
            "index": 0, "message": message, "finish_reason": reason,
            "logprobs": {"content": [_chat_logprob(state, t, e) for t, e in run.logprobs], "refusal": None} if req.logprobs else None,
        }],
        "usage": _usage(len(job.prompt_ids), run.completion_tokens),
        "constrained": _extension(state, job, result.violations),
    }
    return JSONResponse(out)


def _cut_off(state: ServerState, job: ChatJob, text: str) -> ParseResult:
    """A response cut by max_tokens: what a stream would have shown (content and reasoning so far,
    the calls whose arguments are complete), never an unfinished call nor its raw text."""
    seen = StreamingParser(state.dialect, first_index=job.first_index)
    seen.feed(text)
    calls = []
    for call in seen.tool_calls():
        try:
            complete = isinstance(json.loads(call["function"]["arguments"]), dict)
        except ValueError:
            complete = False
        if not complete:
            break
        calls.append(call)
    violations = call_violations(calls, job.tools, state.config.additional_properties) if calls and job.tools else []
    return ParseResult(seen.content or None, seen.reasoning or None, calls, violations)


def _extension(state: ServerState, job: ChatJob, violations: list[str]) -> dict:
    return {"dialect": state.dialect.name, "violations": violations, "grammar_compile_ms": round(job.compile_ms, 3), "grammar_cache_hit": job.cache_hit}


async def _stream_chat(state: ServerState, job: ChatJob, run: _Run, cid: str, created: int) -> AsyncIterator[str]:
    req = job.req
    include_usage = req.include_usage()
    parser = StreamingParser(state.dialect, first_index=job.first_index)

    def chunk(delta: dict, finish: str | None = None, logprobs=None, **extra) -> str:
        c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model, "system_fingerprint": SYSTEM_FINGERPRINT,
             "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
        if include_usage:
            c["usage"] = None
        c.update(extra)
        return _sse(c)

    sent_lp = 0

    def pending_logprobs():
        nonlocal sent_lp
        if not req.logprobs or sent_lp >= len(run.logprobs):
            return None
        out = {"content": [_chat_logprob(state, t, e) for t, e in run.logprobs[sent_lp:]], "refusal": None}
        sent_lp = len(run.logprobs)
        return out

    try:
        yield chunk({"role": "assistant"})
        async for new in run.events():
            if new:
                for delta in parser.feed(new):
                    yield chunk(delta, logprobs=pending_logprobs())
        if run.error:
            yield _sse({"error": {"message": run.error, "type": "server_error", "param": None, "code": "generation_failed"}})
            yield "data: [DONE]\n\n"
            return
        if run.reason != "length":  # cut off: no final flush of an unfinished call's raw text as content
            for delta in parser.finish():
                yield chunk(delta, logprobs=pending_logprobs())
        calls = len(parser.calls)
        violations = parse(run.tracker.text, state.dialect, tools=job.tools or None, first_index=job.first_index).violations if job.tools and calls else []
        state.metrics.finished(run.greq, len(job.prompt_ids), run.completion_tokens, calls, len(violations))
        yield chunk({}, _finish_reason(run.reason or "stop", calls), logprobs=pending_logprobs(), constrained=_extension(state, job, violations))
        if include_usage:
            yield _sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model, "system_fingerprint": SYSTEM_FINGERPRINT,
                        "choices": [], "usage": _usage(len(job.prompt_ids), run.completion_tokens)})
        yield "data: [DONE]\n\n"
    finally:
        run.greq.cancel()  # a client that went away frees its row at the next step


# ---------------------------------------------------------------------------------- completions
def _completion_ids(state: ServerState, req: CompletionRequest) -> tuple[list[int], str]:
    tok = state.tokenizer
    p = req.prompt
    if isinstance(p, list) and p and isinstance(p[0], int):
        for i, t in enumerate(p):
            if not 0 <= t < state.served.vocab_size:
                raise ApiError(400, f"prompt[{i}]: token id {t} is outside the vocabulary", param=f"prompt[{i}]", code="invalid_value")
        return list(p), tok.decode(p, skip_special_tokens=False)
    text = p[0] if isinstance(p, list) else p
    bos = getattr(tok, "bos_token", None)
    ids = tok.encode(text, add_special_tokens=not (bos and text.startswith(bos)))
    if not ids:
        raise ApiError(400, "prompt is empty", param="prompt", code="invalid_value")
    return ids, text


async def completions(state: ServerState, request: Request) -> Response:
    req = await _read_request(state, request, CompletionRequest)
    ids, prompt_text = await run_in_threadpool(_completion_ids, state, req)
    asked = req.max_tokens if req.max_tokens is not None else 16  # OpenAI's default for completions
    sink = AsyncSink()
    greq = GenerationRequest(
        ids, max_tokens=_max_tokens(state, asked, len(ids)), grammar=None,
        temperature=1.0 if req.temperature is None else req.temperature, top_p=1.0 if req.top_p is None else req.top_p,
        seed=_seed(req.seed), logit_bias=_bias(state, req.logit_bias), logprobs=req.logprobs, sink=sink,
    )
    _submit(state, greq)
    tracker = TextTracker(state.tokenizer, state.hidden_ids, req.stop_list())
    run = _Run(state, greq, sink, tracker)
    cid = "cmpl-" + uuid.uuid4().hex
    created = int(time.time())
    echo = prompt_text if req.echo else ""

    def lp_block(entries: list, offset: int) -> dict:
        tokens, token_lps, tops, offsets = [], [], [], []
        for t, (lp, top) in entries:
            s = state.token_text(t)
            tokens.append(s)
            token_lps.append(lp)
            tops.append({state.token_text(i): v for i, v in top} if top else None)
            offsets.append(offset)
            offset += len(s)
        return {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops, "text_offset": offsets}

    if req.stream:
        include_usage = req.include_usage()

        async def gen() -> AsyncIterator[str]:
            def chunk(text: str, finish=None, logprobs=None) -> str:
                c = {"id": cid, "object": "text_completion", "created": created, "model": req.model, "system_fingerprint": SYSTEM_FINGERPRINT,
                     "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}]}
                if include_usage:
                    c["usage"] = None
                return _sse(c)

            sent, offset = 0, len(echo)
            try:
                if echo:
                    yield chunk(echo)
                async for new in run.events():
                    if new:
                        lp = None
                        if req.logprobs is not None:
                            lp = lp_block(run.logprobs[sent:], offset)
                            sent = len(run.logprobs)
                        offset += len(new)
                        yield chunk(new, logprobs=lp)
                if run.error:
                    yield _sse({"error": {"message": run.error, "type": "server_error", "param": None, "code": "generation_failed"}})
                    yield "data: [DONE]\n\n"
                    return
                state.metrics.finished(greq, len(ids), run.completion_tokens)
                lp = lp_block(run.logprobs[sent:], offset) if req.logprobs is not None and sent < len(run.logprobs) else None
                yield chunk("", "length" if run.reason == "length" else "stop", logprobs=lp)
                if include_usage:
                    yield _sse({"id": cid, "object": "text_completion", "created": created, "model": req.model, "choices": [], "usage": _usage(len(ids), run.completion_tokens)})
                yield "data: [DONE]\n\n"
            finally:
                greq.cancel()

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    await _run_to_end(request, greq, run)
    state.metrics.finished(greq, len(ids), run.completion_tokens)
    return JSONResponse({
        "id": cid, "object": "text_completion", "created": created, "model": req.model, "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "text": echo + tracker.text, "finish_reason": "length" if run.reason == "length" else "stop",
                     "logprobs": lp_block(run.logprobs, len(echo)) if req.logprobs is not None else None}],
        "usage": _usage(len(ids), run.completion_tokens),
    })


# ---------------------------------------------------------------------------------- metrics
def metrics_text(state: ServerState) -> str:
    m, e, c = state.metrics, state.engine.stats, state.cache.stats
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        # a sample's first element is its label set, or a suffix (`_sum`, `_count`) for summaries
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    with m.lock:
        reqs = sorted(m.requests.items())
        metric("constrained_http_requests_total", "counter", "HTTP requests by path and status.",
               [(f'{{path="{p}",status="{s}"}}', n) for (p, s), n in reqs] or [("", 0)])
        metric("constrained_request_duration_seconds", "summary", "Generation request latency (submit to last token).",
               [("_sum", round(m.latency_sum, 6)), ("_count", m.latency_count)])
        metric("constrained_time_to_first_token_seconds", "summary", "Time from submit to the first token.",
               [("_sum", round(m.ttft_sum, 6)), ("_count", m.ttft_count)])
        metric("constrained_tool_calls_total", "counter", "Tool calls returned.", [("", m.tool_calls)])
        metric("constrained_schema_violations_total", "counter", "Schema violations reported (keywords the grammar does not enforce).", [("", m.violations)])
        metric("constrained_rejected_requests_total", "counter", "Requests refused because the queue was full.", [("", m.rejected_queue_full)])
    metric("constrained_prompt_tokens_total", "counter", "Prompt tokens prefilled.", [("", e.prompt_tokens)])
    metric("constrained_generation_tokens_total", "counter", "Tokens generated.", [("", e.generated_tokens)])
    metric("constrained_engine_steps_total", "counter", "Decode steps.", [("", e.steps)])
    metric("constrained_jump_forward_tokens_total", "counter", "Tokens fed by jump-forward (forced by the grammar, not sampled).", [("", e.jump_forward_tokens)])
    metric("constrained_forward_seconds_total", "counter", "Time in decode forward passes.", [("", round(e.forward_seconds, 6))])
    metric("constrained_prefill_seconds_total", "counter", "Time in prefill forward passes.", [("", round(e.prefill_seconds, 6))])
    metric("constrained_mask_seconds_total", "counter", "Time filling and applying grammar masks.", [("", round(e.mask_seconds, 6))])
    metric("constrained_sample_seconds_total", "counter", "Time sampling.", [("", round(e.sample_seconds, 6))])
    metric("constrained_grammar_compiles_total", "counter", "Grammars compiled.", [("", c.compiles)])
    metric("constrained_grammar_cache_hits_total", "counter", "Grammar cache hits.", [("", c.cache_hits)])
    metric("constrained_grammar_compile_seconds_total", "counter", "Time compiling grammars.", [("", round(c.compile_seconds, 6))])
    metric("constrained_requests_cancelled_total", "counter", "Requests whose client went away.", [("", e.requests_cancelled)])
    metric("constrained_engine_errors_total", "counter", "Engine steps that failed.", [("", e.errors)])
    metric("constrained_queue_depth", "gauge", "Requests waiting for a batch slot.", [("", state.engine.queue_depth)])
    metric("constrained_running_requests", "gauge", "Requests in the running batch.", [("", state.engine.running)])
    metric("constrained_max_batch", "gauge", "Batch size limit.", [("", state.engine.config.max_batch)])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- the app
class _Gate:
    """ASGI middleware: bearer auth on /v1 and per-path request counting."""

    def __init__(self, app, state: ServerState):
        self.app = app
        self.state = state
        key = state.config.api_key
        self.expected = f"Bearer {key}".encode() if key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if self.expected is not None and path.startswith("/v1"):
            auth = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(auth, self.expected):
                self.state.metrics.count(path if len(path) < 64 else "other", 401)
                message = "missing Authorization header: send 'Authorization: Bearer <api key>'" if not auth else "invalid API key"
                response = _err(401, message, type="authentication_error", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        status = {}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            known = path if path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics") else "other"
            self.state.metrics.count(known, status.get("code", 500))


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="constrained", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = state

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        message = f"no route {request.method} {request.url.path}" if err.status_code in (404, 405) else str(err.detail)
        return _err(err.status_code, message, code="not_found" if err.status_code == 404 else None)

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception):
        log.exception("unhandled error")
        return _err(500, f"internal error: {type(err).__name__}: {err}", type="server_error")

    @app.post("/v1/chat/completions")
    async def _chat(request: Request):
        return await chat_completions(state, request)

    @app.post("/v1/completions")
    async def _completions(request: Request):
        return await completions(state, request)

    @app.get("/v1/models")
    async def _models():
        return {"object": "list", "data": [{"id": n, "object": "model", "created": state.created, "owned_by": "constrained"} for n in state.names]}

    @app.get("/v1/models/{name:path}")
    async def _model(name: str):
        _check_model(state, name)
        return {"id": name, "object": "model", "created": state.created, "owned_by": "constrained"}

    @app.get("/health")
    async def _health():
        ok = state.engine.alive()
        body = {"status": "ok" if ok else "engine stopped", "model": state.names[0], "dialect": state.dialect.name,
                "running": state.engine.running, "queue_depth": state.engine.queue_depth}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def _metrics():
        return PlainTextResponse(metrics_text(state), media_type="text/plain; version=0.0.4")

    app.add_middleware(_Gate, state=state)
    return app
