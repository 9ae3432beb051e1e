"""Generated token ids -> text that is safe to emit: incremental decoding and stop sequences.

Each token costs the same however long the text has grown: its bytes are decoded incrementally
(`constrained.tokenizer.TokenText`), stop sequences are looked for only where the new text could
complete one, and the trigger guard only until it is found. Text is only ever appended, so nothing
decoded is dropped; what is held back (a partial character, a suffix that may grow into a stop
sequence) comes out with the next token or at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from constrained.parsing import held_back as _held_back
from constrained.tokenizer import StreamDecoder


class TextTracker:
    """Decode a growing list of token ids; hold back a trailing partial UTF-8 character and any
    suffix that may grow into a stop sequence; cut at the first stop sequence.

    `guard`: stop sequences count only in the text before it (the dialect's tool-call trigger), so
    a stop sequence can end content but never cut a tool call in half.
    """

    def __init__(self, decoder: StreamDecoder, hidden_ids: Iterable[int], stops: Sequence[str] = (), guard: str | None = None):
        self.decoder = decoder
        self.hidden = set(hidden_ids)
        self.stops = [s for s in stops if s]
        self.longest = max((len(s) for s in self.stops), default=0)
        self.guard = guard
        self.ids: list[int] = []
        self.lengths: list[int] = []  # len(full) after each id: where a token's text ends
        self.full = ""  # decoded so far
        self.emitted = 0  # len(self.text)
        self.searched = 0  # stop sequences were looked for in full[:searched]
        self.guard_at: int | None = None
        self.stopped = False

    @property
    def text(self) -> str:
        """What was emitted so far."""
        return self.full[: self.emitted]

    def add(self, token_id: int) -> None:
        if token_id not in self.hidden and token_id >= 0:
            self.ids.append(token_id)
            self.full += self.decoder.add(token_id)
            self.lengths.append(len(self.full))

    def length_at(self, count: int) -> int:
        """Characters of text the first `count` ids decode to."""
        return self.lengths[count - 1] if 0 < count <= len(self.lengths) else 0

    def update(self, final: bool = False) -> str:
        """-> the text that became safe to emit since the last call."""
        if self.stopped:
            return ""
        if final:
            self.full += self.decoder.flush()
        full = self.full
        if self.guard and self.guard_at is None:
            g = full.find(self.guard, max(0, self.searched - len(self.guard) + 1))
            if g >= 0:
                self.guard_at = g
        region = len(full) if self.guard_at is None else self.guard_at
        safe = len(full)
        if self.stops:
            start = max(0, self.searched - self.longest + 1)
            hits = [p for p in (full.find(s, start, region) for s in self.stops) if p >= 0]
            self.searched = max(self.searched, region)
            if hits:
                safe = min(hits)
                self.stopped = True
            elif not final and self.guard_at is None:
                safe = len(full) - _held_back(full[-self.longest:], self.stops)
        else:
            self.searched = region
        new = full[self.emitted : safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return new
