"""POST /v1/chat/completions: tools, tool_choice, parallel_tool_calls, response_format, streaming.

Non-standard, documented: every chat completion (and the last choice chunk of a stream) carries a
top-level `"constrained"` object: `{"dialect", "violations": [...], "grammar_compile_ms",
"grammar_cache_hit"}`. `violations` lists what jsonschema found wrong in the calls for keywords the
grammar does not enforce (empty almost always); the OpenAI SDK ignores unknown fields.
Messages may carry `reasoning_content` (the dialect's think block), as vLLM and SGLang do.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from constrained.budget import BudgetTooSmall, RowBudget, check_budget
from constrained.chat import History, prepare_history, render_prompt
from constrained.compiler import CompileResult
from constrained.decoding import GrammarState
from constrained.errors import ToolSpecError, UnsatisfiableSchemaError, UnsupportedSchemaError, describe
from constrained.grammar import GrammarOptions, content_from_response_format
from constrained.parsing import ParseResult, StreamingParser, parse, parse_cut_off
from constrained.schema.checks import check_depth
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
    budget: RowBudget | None = None  # the row's token budget (constrained.budget)
    think_open: bool = False  # the prompt ends inside the think block


def _tool_error(err: UnsupportedSchemaError | ToolSpecError) -> ApiError:
    if isinstance(err, UnsupportedSchemaError):
        code = "unsatisfiable_schema" if isinstance(err, UnsatisfiableSchemaError) else "unsupported_schema"
        return ApiError(400, describe(err), param=err.param or "tools", code=code)
    return ApiError(400, describe(err), param=err.param, code="invalid_tools" if (err.param or "").startswith("tool") else "invalid_value")


@dataclass
class _Prepared:
    """A chat request checked and tokenized (a worker), its grammar cached or being compiled."""

    req: ChatCompletionRequest
    tools: tuple[Tool, ...]
    first_index: int
    prompt_ids: list[int]
    max_tokens: int
    think_open: bool
    compiled: CompileResult | None  # a cache hit
    compiling: Future[CompileResult] | None  # else: its compile, on the compile pool


def _prepare(state: ServerState, req: ChatCompletionRequest) -> _Prepared:
    """Validate history and tools, tokenize the prompt, and find the grammar in the cache or start
    compiling it (schema errors surface here, before any compile is queued)."""
    d = state.dialect
    try:
        tools = req.typed_tools()
        for i, tool in enumerate(tools):  # before the prompt writes the schemas out (json.dumps recurses)
            try:
                check_depth(tool.parameters)
            except UnsupportedSchemaError as err:
                raise err.with_context(source="tool", tool=tool.name, tool_index=i) from None
        history = prepare_history(req.message_dicts(), d)
        prompt = chat_prompt(state, history, tools)
        # a thinking template's generation prompt opens the think block: the output starts inside it
        think_open = bool(d.reasoning) and prompt.rstrip().endswith(d.reasoning[0])  # type: ignore[index]
        content_schema, content_policy = content_from_response_format(req.response_format.as_dict() if req.response_format else None)
        options = GrammarOptions(
            tool_choice=req.typed_tool_choice(),
            parallel_tool_calls=True if req.parallel_tool_calls is None else req.parallel_tool_calls,
            first_index=history.calls_so_far,
            content_schema=content_schema,
            additional_properties=state.config.additional_properties,
            content_additional_properties=content_policy,
            think_open=think_open,
        )
        ids = state.tokenizer.encode(prompt, add_special_tokens=False)
        max_tokens = max_tokens_for(state, req.limit(), len(ids))
        key = state.cache.key(d, tools, options)
        compiled = state.cache.cached(key)
        compiling = None if compiled is not None else state.compiles.pending(key)
        if compiled is None and compiling is None:
            ebnf = state.cache.ebnf(d, tools, options)  # normalises every schema: a bad one is a 400 now
            compiling = state.compiles.submit(key, functools.partial(state.cache.compile, d, tools, options, ebnf=ebnf))
    except (UnsupportedSchemaError, ToolSpecError) as err:
        raise _tool_error(err) from None
    return _Prepared(req, tools, history.calls_so_far, ids, max_tokens, think_open, compiled, compiling)


def _compiling_what(pre: _Prepared) -> str:
    """The part of the request its grammar's compile time most likely comes from."""
    if not pre.tools:
        return "the response_format schema"
    biggest = max(pre.tools, key=lambda t: len(json.dumps(t.parameters, default=str)))
    return f"tool {biggest.name!r}" if len(pre.tools) == 1 else f"this request's {len(pre.tools)} tools (the largest schema: tool {biggest.name!r})"


def _job(state: ServerState, pre: _Prepared, compiled: CompileResult) -> ChatJob:
    """The request's token budget against its grammar (a worker): 400 when max_tokens cannot hold
    the shortest complete answer."""
    req, d = pre.req, state.dialect
    closer = state.cache.closer(d, state.stop_ids)
    fresh = GrammarState(compiled.grammar, state.stop_ids)
    try:
        check_budget(closer, fresh, pre.max_tokens)
    except BudgetTooSmall as err:
        param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        raise ApiError(400, f"{param} is {err.budget}, but the shortest complete answer for this tool_choice takes {err.minimum} "
                            f"tokens (the call with the shortest arguments and the end markers): raise {param} to at least {err.minimum}",
                       param=param, code="max_tokens_too_small") from None
    budget = RowBudget(closer, pre.max_tokens, state.cache.margin(d, compiled, state.stop_ids))
    return ChatJob(req, pre.prompt_ids, compiled.grammar, pre.tools, pre.first_index, compiled.seconds * 1000, compiled.cache_hit,
                   pre.max_tokens, budget, pre.think_open)


async def _chat_job(state: ServerState, req: ChatCompletionRequest) -> ChatJob:
    pre = await state.off_loop(_prepare, state, req)
    compiled = pre.compiled
    if compiled is None:
        assert pre.compiling is not None
        try:
            compiled = await state.compiles.wait(pre.compiling, state.config.compile_timeout, _compiling_what(pre))
        except (UnsupportedSchemaError, ToolSpecError) as err:  # the compile another request started
            raise _tool_error(err) from None
    return await state.off_loop(_job, state, pre, compiled)


def prepare_chat(state: ServerState, req: ChatCompletionRequest) -> ChatJob:
    """The stages of a chat request in one thread, waiting for the compile without a deadline."""
    pre = _prepare(state, req)
    compiled = pre.compiled if pre.compiled is not None else pre.compiling.result()  # type: ignore[union-attr]
    return _job(state, pre, compiled)


def chat_prompt(state: ServerState, history: History, tools: tuple[Tool, ...]) -> str:
    """The prompt text the server writes for a chat request (the benchmark's free arm sends the same)."""
    if not state.served.use_chat_template:
        return render_prompt(state.dialect, history, tools)
    try:
        return str(state.tokenizer.apply_chat_template(
            history.messages, tools=[t.to_openai() for t in tools] or None, add_generation_prompt=True, tokenize=False,
        ))
    except Exception as err:  # jinja raises on histories the template rejects
        raise ApiError(400, f"the model's chat template rejected the messages: {err}", param="messages", code="invalid_messages") from None


def _chat_logprob(state: ServerState, token_id: int, entry) -> dict:
    lp, top = entry
    s = state.token_text(token_id)
    return {
        "token": s, "logprob": lp, "bytes": list(s.encode("utf-8", "replace")),
        "top_logprobs": [{"token": state.token_text(t), "logprob": v, "bytes": list(state.token_text(t).encode("utf-8", "replace"))} for t, v in top],
    }


def _finish_reason(engine_reason: str, calls: int, budget: RowBudget | None) -> str:
    if engine_reason == "length" or (budget is not None and budget.forced):
        return "length"  # the budget ended it, or closed it early
    return "tool_calls" if calls else "stop"


def _closed_at(job: ChatJob, run: Run) -> int | None:
    """Where in the text the budget started forcing the close (None: it did not)."""
    forced = job.budget.forced_at if job.budget is not None else None
    if forced is None:
        return None
    return run.tracker.length_at(forced)


async def chat_completions(state: ServerState, request: Request) -> Response:
    req = await read_request(state, request, ChatCompletionRequest)
    job = await _chat_job(state, req)
    sink = AsyncSink()
    greq = GenerationRequest(
        job.prompt_ids, max_tokens=job.max_tokens, grammar=job.grammar, budget=job.budget,
        temperature=1.0 if req.temperature is None else req.temperature, top_p=1.0 if req.top_p is None else req.top_p,
        seed=request_seed(req.seed), logit_bias=token_bias(state, req.logit_bias),
        logprobs=(req.top_logprobs or 0) if req.logprobs else None, sink=sink,
    )
    submit(state, greq)
    tracker = TextTracker(state.text.stream(), state.hidden_ids, req.stop_list(), guard=state.dialect.trigger)
    run = Run(state, greq, sink, tracker)
    cid = "chatcmpl-" + uuid.uuid4().hex
    created = int(time.time())
    if req.stream:
        chunks = Chunks(cid, "chat.completion.chunk", created, req.model, req.include_usage())
        return StreamingResponse(_stream_chat(state, job, run, chunks), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await run_to_end(request, greq, run)
    result = await state.off_loop(_result, state, job, run)
    reason = _finish_reason(run.reason or "stop", len(result.tool_calls), job.budget)
    state.metrics.finished(greq, len(job.prompt_ids), run.completion_tokens, len(result.tool_calls), len(result.violations))
    out = {
        "id": cid, "object": "chat.completion", "created": created, "model": req.model, "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{
            "index": 0, "message": result.message(), "finish_reason": reason,
            "logprobs": {"content": [_chat_logprob(state, t, e) for t, e in run.logprobs], "refusal": None} if req.logprobs else None,
        }],
        "usage": usage(len(job.prompt_ids), run.completion_tokens),
        "constrained": _extension(state, job, result.violations, result.truncated),
    }
    return JSONResponse(out)


def _result(state: ServerState, job: ChatJob, run: Run) -> ParseResult:
    """The whole output parsed and its calls validated (a worker), under the server's policy."""
    if run.reason == "length":
        return _cut_off(state, job, run.tracker.text)
    return parse(run.tracker.text, state.dialect, tools=job.tools or None, first_index=job.first_index,
                 additional_properties=state.config.additional_properties, budget_closed_at=_closed_at(job, run),
                 budget_calls=state.config.budget_calls, think_open=job.think_open)


def _cut_off(state: ServerState, job: ChatJob, text: str) -> ParseResult:
    """A response cut by max_tokens (`parse_cut_off`), with its calls' violations."""
    result = parse_cut_off(text, state.dialect, job.first_index, job.tools or None, think_open=job.think_open)
    if result.tool_calls and job.tools:
        result.violations = call_violations(result.tool_calls, job.tools, state.config.additional_properties)
    return result


def _extension(state: ServerState, job: ChatJob, violations: list[str], truncated: list[int]) -> dict:
    """`truncated`: indexes of the calls the token budget closed early (valid, maybe cut short)."""
    return {"dialect": state.dialect.name, "violations": violations, "truncated": truncated,
            "grammar_compile_ms": round(job.compile_ms, 3), "grammar_cache_hit": job.cache_hit}


class _BudgetGate:
    """Streamed tool-call deltas under `--budget-calls drop`: each call is held back until it is
    complete, then sent (its indexes kept contiguous) unless the budget had started closing it."""

    def __init__(self, parser: StreamingParser, job: ChatJob, run: Run, drop: bool):
        self.parser, self.job, self.run, self.drop = parser, job, run, drop
        self.held: dict[int, list[dict]] = {}
        self.index: dict[int, int] = {}  # the parser's call index -> the index sent
        self.dropped: set[int] = set()

    def _closed_at(self) -> int | None:
        at = _closed_at(self.job, self.run)
        return None if at is None else at + self.parser.offset

    def cut(self, i: int) -> bool:
        at = self._closed_at()
        return at is not None and self.parser.ends[i] > at

    def truncated(self) -> list[int]:
        return [] if self.drop else [i for i in range(len(self.parser.calls)) if self.parser.ends[i] >= 0 and self.cut(i)]

    def pass_(self, deltas: list[dict]) -> list[dict]:
        if not self.drop:
            return deltas
        out = []
        for delta in deltas:
            if "tool_calls" not in delta:
                out.append(delta)
                continue
            i = delta["tool_calls"][0]["index"]
            if i not in self.dropped:
                self.held.setdefault(i, []).append(delta)
        for i in sorted(self.held):
            if self.parser.ends[i] < 0:
                break  # still open: wait
            held = self.held.pop(i)
            if self.cut(i):
                self.dropped.add(i)
                continue
            self.index[i] = len(self.index)
            for delta in held:
                call = dict(delta["tool_calls"][0], index=self.index[i])
                out.append({"tool_calls": [call]})
        return out

    def calls(self) -> list:
        every = self.parser.tool_calls()
        return [every[i] for i in sorted(self.index)] if self.drop else every


async def _stream_chat(state: ServerState, job: ChatJob, run: Run, chunks: Chunks) -> AsyncIterator[str]:
    req = job.req
    parser = StreamingParser(state.dialect, first_index=job.first_index, think_open=job.think_open, tools=job.tools or None)
    gate = _BudgetGate(parser, job, run, state.config.budget_calls == "drop")
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
                for delta in gate.pass_(parser.feed(new)):
                    yield chunk(delta)
        if run.error:
            yield chunks.error(run.error)
            return
        if run.reason != "length":  # cut off: no final flush of an unfinished call's raw text as content
            for delta in gate.pass_(await state.off_loop(parser.finish)):
                yield chunk(delta)
        sent = gate.calls()
        violations = await state.off_loop(call_violations, sent, job.tools, state.config.additional_properties) if job.tools and sent else []
        state.metrics.finished(run.greq, len(job.prompt_ids), run.completion_tokens, len(sent), len(violations))
        yield chunk({}, _finish_reason(run.reason or "stop", len(sent), job.budget),
                    constrained=_extension(state, job, violations, gate.truncated()))
        if chunks.include_usage:
            yield chunks.usage(usage(len(job.prompt_ids), run.completion_tokens))
        yield DONE
    finally:
        run.greq.cancel()  # a client that went away frees its row at the next step
