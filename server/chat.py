"""POST /v1/chat/completions: tools, tool_choice, parallel_tool_calls, response_format, streaming.

Non-standard, documented: every chat completion (and the last choice chunk of a stream) carries a
top-level `"constrained"` object: `{"dialect", "violations": [...], "grammar_compile_ms",
"grammar_cache_hit"}`. `violations` lists what jsonschema found wrong in the calls for keywords the
grammar does not enforce (empty almost always); the OpenAI SDK ignores unknown fields.
Messages may carry `reasoning_content` (the dialect's think block), as vLLM and SGLang do.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from constrained.chat import prepare_history, render_prompt
from constrained.errors import ToolSpecError, UnsupportedSchemaError
from constrained.grammar import GrammarOptions, content_from_response_format
from constrained.parsing import ParseResult, StreamingParser, parse, parse_cut_off
from constrained.types import Tool
from constrained.validation import call_violations

from .engine import AsyncSink, GenerationRequest
from .http import Run, max_tokens_for, read_request, request_seed, run_to_end, submit, token_bias, usage
from .protocol import ApiError, ChatCompletionRequest
from .sse import DONE, SYSTEM_FINGERPRINT, Chunks
from .state import ServerState
from .text import TextTracker


@dataclass
class ChatJob:
    """A validated chat request, ready for the engine: prompt tokens, grammar, typed tools."""

    req: ChatCompletionRequest
    prompt_ids: list[int]
    grammar: Any
    tools: tuple[Tool, ...]
    first_index: int
    compile_ms: float
    cache_hit: bool
    max_tokens: int


def _tool_error(err: UnsupportedSchemaError | ToolSpecError) -> ApiError:
    if isinstance(err, UnsupportedSchemaError):
        return ApiError(400, err.message, param=err.param or "tools", code="unsupported_schema")
    message = str(err) if not err.param or err.param in str(err) else f"{err.param}: {err}"
    return ApiError(400, message, param=err.param, code="invalid_tools" if (err.param or "").startswith("tool") else "invalid_value")


def prepare_chat(state: ServerState, req: ChatCompletionRequest) -> ChatJob:
    """Validate history and tools, compile the grammar and tokenize the prompt (a worker thread)."""
    d = state.dialect
    try:
        tools = req.typed_tools()
        history = prepare_history(req.message_dicts(), d)
        content_schema, content_policy = content_from_response_format(req.response_format.as_dict() if req.response_format else None)
        options = GrammarOptions(
            tool_choice=req.typed_tool_choice(),
            parallel_tool_calls=True if req.parallel_tool_calls is None else req.parallel_tool_calls,
            first_index=history.calls_so_far,
            content_schema=content_schema,
            additional_properties=state.config.additional_properties,
            content_additional_properties=content_policy,
        )
        compiled = state.cache.compile(d, tools, options)
    except (UnsupportedSchemaError, ToolSpecError) as err:
        raise _tool_error(err) from None
    if state.served.use_chat_template:
        try:
            prompt = state.tokenizer.apply_chat_template(
                history.messages, tools=[t.to_openai() for t in tools] or None, add_generation_prompt=True, tokenize=False,
            )
        except Exception as err:  # jinja raises on histories the template rejects
            raise ApiError(400, f"the model's chat template rejected the messages: {err}", param="messages", code="invalid_messages") from None
    else:
        prompt = render_prompt(d, history, tools)
    ids = state.tokenizer.encode(prompt, add_special_tokens=False)
    return ChatJob(req, ids, compiled.grammar, tools, history.calls_so_far, compiled.seconds * 1000, compiled.cache_hit,
                   max_tokens_for(state, req.limit(), len(ids)))


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


async def chat_completions(state: ServerState, request: Request) -> Response:
    req = await read_request(state, request, ChatCompletionRequest)
    job = await run_in_threadpool(prepare_chat, state, req)
    sink = AsyncSink()
    greq = GenerationRequest(
        job.prompt_ids, max_tokens=job.max_tokens, grammar=job.grammar,
        temperature=1.0 if req.temperature is None else req.temperature, top_p=1.0 if req.top_p is None else req.top_p,
        seed=request_seed(req.seed), logit_bias=token_bias(state, req.logit_bias),
        logprobs=(req.top_logprobs or 0) if req.logprobs else None, sink=sink,
    )
    submit(state, greq)
    tracker = TextTracker(state.tokenizer, state.hidden_ids, req.stop_list(), guard=state.dialect.trigger)
    run = Run(state, greq, sink, tracker)
    cid = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    if req.stream:
        chunks = Chunks(cid, "chat.completion.chunk", created, req.model, req.include_usage())
        return StreamingResponse(_stream_chat(state, job, run, chunks), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await run_to_end(request, greq, run)
    if run.reason == "length":
        result = _cut_off(state, job, tracker.text)
    else:
        result = parse(tracker.text, state.dialect, tools=job.tools or None, first_index=job.first_index,
                       additional_properties=state.config.additional_properties)
    reason = _finish_reason(run.reason or "stop", len(result.tool_calls))
    state.metrics.finished(greq, len(job.prompt_ids), run.completion_tokens, len(result.tool_calls), len(result.violations))
    out = {
        "id": cid, "object": "chat.completion", "created": created, "model": req.model, "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{
            "index": 0, "message": result.message(), "finish_reason": reason,
            "logprobs": {"content": [_chat_logprob(state, t, e) for t, e in run.logprobs], "refusal": None} if req.logprobs else None,
        }],
        "usage": usage(len(job.prompt_ids), run.completion_tokens),
        "constrained": _extension(state, job, result.violations),
    }
    return JSONResponse(out)


def _cut_off(state: ServerState, job: ChatJob, text: str) -> ParseResult:
    """A response cut by max_tokens (`parse_cut_off`), with its calls' violations."""
    result = parse_cut_off(text, state.dialect, job.first_index)
    if result.tool_calls and job.tools:
        result.violations = call_violations(result.tool_calls, job.tools, state.config.additional_properties)
    return result


def _extension(state: ServerState, job: ChatJob, violations: list[str]) -> dict:
    return {"dialect": state.dialect.name, "violations": violations, "grammar_compile_ms": round(job.compile_ms, 3), "grammar_cache_hit": job.cache_hit}


async def _stream_chat(state: ServerState, job: ChatJob, run: Run, chunks: Chunks) -> AsyncIterator[str]:
    req = job.req
    parser = StreamingParser(state.dialect, first_index=job.first_index)
    sent_lp = 0

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> str:
        nonlocal sent_lp
        logprobs = None
        if req.logprobs and sent_lp < len(run.logprobs):
            logprobs = {"content": [_chat_logprob(state, t, e) for t, e in run.logprobs[sent_lp:]], "refusal": None}
            sent_lp = len(run.logprobs)
        return chunks.choice({"delta": delta, "logprobs": logprobs, "finish_reason": finish}, **extra)

    try:
        yield chunk({"role": "assistant"})
        async for new in run.events():
            if new:
                for delta in parser.feed(new):
                    yield chunk(delta)
        if run.error:
            yield chunks.error(run.error)
            return
        if run.reason != "length":  # cut off: no final flush of an unfinished call's raw text as content
            for delta in parser.finish():
                yield chunk(delta)
        calls = len(parser.calls)
        violations = call_violations(parser.tool_calls(), job.tools, state.config.additional_properties) if job.tools and calls else []
        state.metrics.finished(run.greq, len(job.prompt_ids), run.completion_tokens, calls, len(violations))
        yield chunk({}, _finish_reason(run.reason or "stop", calls), constrained=_extension(state, job, violations))
        if chunks.include_usage:
            yield chunks.usage(usage(len(job.prompt_ids), run.completion_tokens))
        yield DONE
    finally:
        run.greq.cancel()  # a client that went away frees its row at the next step
