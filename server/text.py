"""Generated token ids -> text that is safe to emit: incremental decoding and stop sequences."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from constrained.parsing import held_back as _held_back


class TextTracker:
    """Decode a growing list of token ids; hold back a trailing partial UTF-8 character and any
    suffix that may grow into a stop sequence; cut at the first stop sequence.

    `guard`: stop sequences count only in the text before it (the dialect's tool-call trigger), so
    a stop sequence can end content but never cut a tool call in half.
    """

    def __init__(self, tokenizer: Any, hidden_ids: Iterable[int], stops: Sequence[str] = (), guard: str | None = None, prefix: str = ""):
        self.tokenizer = tokenizer
        self.hidden = set(hidden_ids)
        self.stops = [s for s in stops if s]
        self.guard = guard
        self.ids: list[int] = []
        self.prefix = prefix
        self.text = ""  # emitted so far (without prefix)
        self.stopped = False

    def add(self, token_id: int) -> None:
        if token_id not in self.hidden and token_id >= 0:
            self.ids.append(token_id)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _decode(self) -> str:
        return self.decode(self.ids)

    def update(self, final: bool = False) -> str:
        """-> the text that became safe to emit since the last call."""
        if self.stopped:
            return ""
        full = self._decode()
        if not final:
            full = full.rstrip("\ufffd")
        region = full
        guarded = False
        if self.guard:
            g = full.find(self.guard)
            if g >= 0:
                region, guarded = full[:g], True
        safe = full
        if self.stops:
            hits = [p for p in (region.find(s) for s in self.stops) if p >= 0]
            if hits:
                safe = full[: min(hits)]
                self.stopped = True
            elif not final and not guarded:
                safe = full[: len(full) - _held_back(full, self.stops)]
        if not safe.startswith(self.text):
            return ""  # a decode that rewrote earlier text (rare): what was emitted stands
        new = safe[len(self.text):]
        self.text = safe
        return new
