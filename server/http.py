"""What both generation routes share: reading and validating a request body, the sampling
parameters, submitting to the engine, and consuming its events (`Run`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from .engine import AsyncSink, EngineStopped, GenerationRequest, QueueFull
from .protocol import ApiError, validation_error
from .state import ServerState
from .text import TextTracker


def error_response(status: int, message: str, type: str = "invalid_request_error", param: str | None = None, code: str | None = None, headers=None) -> JSONResponse:
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


def check_model(state: ServerState, name: str) -> None:
    if name not in state.names:
        raise ApiError(404, f"The model {name!r} does not exist; this server serves {', '.join(repr(n) for n in state.names)}", param="model", code="model_not_found")


def request_seed(seed: int | None) -> int | None:
    return None if seed is None else seed & ((1 << 64) - 1)


def token_bias(state: ServerState, bias: dict | None) -> dict[int, float] | None:
    if not bias:
        return None
    out = {}
    for key, value in bias.items():
        tid = int(key)
        if not 0 <= tid < state.served.vocab_size:
            raise ApiError(400, f"logit_bias token id {tid} is outside the vocabulary (0..{state.served.vocab_size - 1})", param="logit_bias", code="invalid_value")
        out[tid] = float(value)
    return out


def max_tokens_for(state: ServerState, asked: int | None, prompt_len: int) -> int:
    room = state.served.max_context - prompt_len
    if room < 1:
        raise ApiError(400, f"the prompt is {prompt_len} tokens; this model's context is {state.served.max_context} tokens", param="messages", code="context_length_exceeded")
    return min(asked if asked is not None else state.config.default_max_tokens, room)


def submit(state: ServerState, greq: GenerationRequest) -> None:
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


async def run_to_end(request: Request, greq: GenerationRequest, run: Run) -> None:
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


def usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class Run:
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


async def read_request(state: ServerState, request: Request, model_cls: Any) -> Any:
    """Body -> validated request model for a served model (400/404 naming the problem)."""
    body = await read_json(request, state.config.max_body_bytes)
    try:
        req = model_cls.model_validate(body)
    except ValidationError as err:
        raise validation_error(err) from None
    if hasattr(req, "check"):
        req.check()
    check_model(state, req.model)
    return req
