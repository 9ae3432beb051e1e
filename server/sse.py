"""Server-sent events: the framing, and the chunks of one streamed response (chat or completion)."""

from __future__ import annotations

import json
from typing import Any

SYSTEM_FINGERPRINT = "constrained-0.1"
DONE = "data: [DONE]\n\n"


def sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


class Chunks:
    """The events of one streamed response: every chunk carries the same id, object, created and
    model; with `include_usage` each choice chunk says `usage: null` and a last chunk carries it."""

    def __init__(self, cid: str, obj: str, created: int, model: str, include_usage: bool):
        self.head = {"id": cid, "object": obj, "created": created, "model": model, "system_fingerprint": SYSTEM_FINGERPRINT}
        self.include_usage = include_usage

    def choice(self, choice: dict, **extra: Any) -> str:
        chunk = {**self.head, "choices": [{"index": 0, **choice}]}
        if self.include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return sse(chunk)

    def usage(self, usage: dict) -> str:
        return sse({**self.head, "choices": [], "usage": usage})

    @staticmethod
    def error(message: str) -> str:
        """An error in the middle of a stream, then the end of it."""
        return sse({"error": {"message": message, "type": "server_error", "param": None, "code": "generation_failed"}}) + DONE
