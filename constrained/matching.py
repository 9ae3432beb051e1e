"""The decoding path: one grammar matcher per sequence, masks filled for the whole batch at once.

`transformers` generate (through `ToolCallLogitsProcessor`) and the server's engine both drive a
`GrammarBatch`: accept the tokens just sampled, fill the next masks (xgrammar's
`BatchGrammarMatcher`, C++ threads), apply them to the logits.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import xgrammar as xgr


def _penalty_table() -> np.ndarray:
    """For each byte of a bitmask, the 8 logit penalties it stands for: 0 (allowed) or -inf."""
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
    return np.where(bits == 1, 0.0, -np.inf).astype(np.float32)


_PENALTY = _penalty_table()


# A row whose allowed (or forbidden) tokens fall in at most this many of its 32-token words is
# written token by token; past it, one table lookup per bitmask byte is cheaper.
SCATTER_WORDS = 1024
_BIT = np.arange(32)


def _bit_tokens(packed: np.ndarray, words: np.ndarray, value: int, vocab: int) -> np.ndarray:
    """Token ids (below ``vocab``) of the bits equal to ``value`` (1 allowed, 0 forbidden) in these words."""
    bits = np.unpackbits(packed[words].view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")
    tokens = (words[:, None] * 32 + _BIT[None, :])[bits == value]
    return tokens[tokens < vocab]


def _apply_row(row: Any, packed: np.ndarray, vocab: int) -> bool:
    """Mask one row (a numpy view, or a torch tensor for dtypes numpy lacks: both index alike) by
    scattering: keep the few allowed tokens (structure), or forbid the few forbidden ones (inside
    a string). Returns False when both are many and the caller should use the lookup table."""
    mixed = packed != -1
    if not mixed.any():
        return True  # every token allowed: nothing to do
    allowed_words = np.flatnonzero(packed)
    if len(allowed_words) <= SCATTER_WORDS:
        allowed = _bit_tokens(packed, allowed_words, 1, vocab)
        kept = row[allowed]
        row[...] = -np.inf
        row[allowed] = kept
        return True
    mixed_words = np.flatnonzero(mixed)
    if len(mixed_words) <= SCATTER_WORDS:
        row[_bit_tokens(packed, mixed_words, 0, vocab)] = -np.inf
        return True
    return False


def apply_bitmask_(scores: torch.Tensor, bitmask: torch.Tensor, rows: Sequence[int] | None = None) -> None:
    """Set the logits of tokens the bitmask forbids to -inf, in place.

    On CPU, per row: nothing when every token is allowed; when few tokens are allowed (most
    tool-call states) keep just those; when few are forbidden (inside a string) write just those;
    otherwise one table lookup per bitmask byte plus one add. float32 rows are written through
    numpy views (a torch indexing call costs several µs). All beat
    `xgrammar.apply_token_bitmask_inplace` on CPU (see benchmarks). On GPU xgrammar's kernel is used.
    """
    if scores.device.type != "cpu":
        xgr.apply_token_bitmask_inplace(scores, bitmask.to(scores.device, non_blocking=True), indices=list(rows) if rows is not None else None)
        return
    vocab = scores.shape[-1]
    words = (vocab + 31) // 32
    row_ids = list(range(scores.shape[0])) if rows is None else list(rows)
    packed = bitmask.numpy()[row_ids, :words]
    as_numpy = scores.dtype == torch.float32 and scores.is_contiguous()
    view = scores.numpy() if as_numpy else None
    dense_rows = [k for k, r in enumerate(row_ids) if not _apply_row(view[r] if as_numpy else scores[r], packed[k], vocab)]
    if not dense_rows:
        return
    penalty = _PENALTY[packed[dense_rows].view(np.uint8)].reshape(len(dense_rows), -1)[:, :vocab]
    targets = [row_ids[k] for k in dense_rows]
    if as_numpy:
        view[targets] += penalty
    else:
        idx = torch.as_tensor(targets)
        scores[idx] = scores[idx] + torch.from_numpy(penalty).to(scores.dtype)


class GrammarBatch:
    """Matchers for a batch of sequences. Rows whose grammar is None are left free."""

    def __init__(
        self, grammars: Sequence[xgr.CompiledGrammar | None], vocab_size: int, stop_token_ids: Sequence[int] | None = None
    ):
        stops = list(stop_token_ids) if stop_token_ids else None
        matchers = [xgr.GrammarMatcher(g, override_stop_tokens=stops) if g is not None else None for g in grammars]
        self._init(matchers, vocab_size, None)

    @classmethod
    def from_matchers(
        cls, matchers: Sequence[xgr.GrammarMatcher | None], vocab_size: int, batch_matcher: xgr.BatchGrammarMatcher | None = None
    ) -> "GrammarBatch":
        """A batch over existing matchers: an engine's rows join and leave between steps."""
        batch = cls.__new__(cls)
        batch._init(list(matchers), vocab_size, batch_matcher)
        return batch

    def _init(self, matchers: list, vocab_size: int, batch_matcher: xgr.BatchGrammarMatcher | None) -> None:
        self.matchers = matchers
        self.vocab_size = vocab_size
        self.bitmask = xgr.allocate_token_bitmask(max(1, len(matchers)), vocab_size)
        multi = len(matchers) > 1
        self._batch = (batch_matcher or xgr.BatchGrammarMatcher(max_threads="auto")) if multi else None

    def __len__(self) -> int:
        return len(self.matchers)

    def active_rows(self) -> list[int]:
        return [i for i, m in enumerate(self.matchers) if m is not None and not m.is_terminated()]

    def accept(self, tokens: Sequence[int]) -> None:
        for i, (matcher, token) in enumerate(zip(self.matchers, tokens)):
            if matcher is None or matcher.is_terminated():
                continue
            if not matcher.accept_token(int(token)):
                raise ValueError(f"row {i}: token {int(token)} is not allowed by the grammar (was the mask applied?)")

    def is_completed(self, row: int) -> bool:
        m = self.matchers[row]
        return m is None or m.is_completed() or m.is_terminated()

    def fill(self) -> list[int]:
        """Fill the masks of the active rows; returns those rows."""
        rows = self.active_rows()
        if not rows:
            return rows
        if self._batch is not None and len(rows) > 1:
            self._batch.batch_fill_next_token_bitmask([self.matchers[i] for i in rows], self.bitmask, indices=rows)
        else:
            for i in rows:
                self.matchers[i].fill_next_token_bitmask(self.bitmask, i)
        return rows

    def apply(self, scores: torch.Tensor, rows: Sequence[int]) -> None:
        if rows:
            apply_bitmask_(scores, self.bitmask, None if len(rows) == len(self) else rows)

    def jump_forward(self, row: int) -> str:
        """Text the grammar forces next (for engines that can append several tokens at once)."""
        m = self.matchers[row]
        return "" if m is None or m.is_terminated() else m.find_jump_forward_string()
