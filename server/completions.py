"""POST /v1/completions: a raw prompt (string, one-string list, or token ids), no grammar."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .engine import AsyncSink, GenerationRequest
from .http import Run, max_tokens_for, read_request, request_seed, run_to_end, submit, token_bias, usage
from .protocol import ApiError, CompletionRequest
from .sse import DONE, SYSTEM_FINGERPRINT, Chunks
from .state import ServerState
from .text import TextTracker


def _completion_ids(state: ServerState, req: CompletionRequest) -> tuple[list[int], str]:
    tok = state.tokenizer
    p = req.prompt
    if isinstance(p, list) and p and isinstance(p[0], int):
        for i, t in enumerate(p):
            if not 0 <= t < state.served.vocab_size:
                raise ApiError(400, f"prompt[{i}]: token id {t} is outside the vocabulary", param=f"prompt[{i}]", code="invalid_value")
        return list(p), tok.decode(p, skip_special_tokens=False)
    text = str(p[0] if isinstance(p, list) else p)  # a string: token-id prompts returned above
    bos = getattr(tok, "bos_token", None)
    ids = tok.encode(text, add_special_tokens=not (bos and text.startswith(bos)))
    if not ids:
        raise ApiError(400, "prompt is empty", param="prompt", code="invalid_value")
    return ids, text


async def completions(state: ServerState, request: Request) -> Response:
    req = await read_request(state, request, CompletionRequest)
    ids, prompt_text = await state.off_loop(_completion_ids, state, req)
    asked = req.max_tokens if req.max_tokens is not None else 16  # OpenAI's default for completions
    sink = AsyncSink()
    greq = GenerationRequest(
        ids, max_tokens=max_tokens_for(state, asked, len(ids)), grammar=None,
        temperature=1.0 if req.temperature is None else req.temperature, top_p=1.0 if req.top_p is None else req.top_p,
        seed=request_seed(req.seed), logit_bias=token_bias(state, req.logit_bias), logprobs=req.logprobs, sink=sink,
    )
    submit(state, greq)
    tracker = TextTracker(state.text.stream(), state.hidden_ids, req.stop_list())
    run = Run(state, greq, sink, tracker)
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
        chunks = Chunks(cid, "text_completion", created, req.model, req.include_usage())

        async def gen() -> AsyncIterator[str]:
            def chunk(text: str, finish=None, logprobs=None) -> str:
                return chunks.choice({"text": text, "logprobs": logprobs, "finish_reason": finish})

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
                    yield chunks.error(run.error)
                    return
                state.metrics.finished(greq, len(ids), run.completion_tokens)
                lp = lp_block(run.logprobs[sent:], offset) if req.logprobs is not None and sent < len(run.logprobs) else None
                yield chunk("", "length" if run.reason == "length" else "stop", logprobs=lp)
                if chunks.include_usage:
                    yield chunks.usage(usage(len(ids), run.completion_tokens))
                yield DONE
            finally:
                greq.cancel()

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    await run_to_end(request, greq, run)
    state.metrics.finished(greq, len(ids), run.completion_tokens)
    return JSONResponse({
        "id": cid, "object": "text_completion", "created": created, "model": req.model, "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "text": echo + tracker.text, "finish_reason": "length" if run.reason == "length" else "stop",
                     "logprobs": lp_block(run.logprobs, len(echo)) if req.logprobs is not None else None}],
        "usage": usage(len(ids), run.completion_tokens),
    })
