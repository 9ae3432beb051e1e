"""The decoding path: one grammar matcher per sequence, masks filled for the whole batch at once.

`transformers` generate (through `ToolCallLogitsProcessor`) and the server's engine both drive a
`GrammarBatch`: accept the tokens just sampled, fill the next masks (xgrammar's
`BatchGrammarMatcher`, C++ threads), apply them to the logits.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import xgrammar as xgr


def _penalty_table() -> np.ndarray:
    """For each byte of a bitmask, the 8 logit penalties it stands for: 0 (allowed) or -inf."""
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")
    return np.where(bits == 1, 0.0, -np.inf).astype(np.float32)


_PENALTY = _penalty_table()


def apply_bitmask_(scores: torch.Tensor, bitmask: torch.Tensor, rows: Sequence[int] | None = None) -> None:
    """Set the logits of tokens the bitmask forbids to -inf, in place.

    On CPU, one table lookup per bitmask byte plus one add is faster than
    `xgrammar.apply_token_bitmask_inplace` (see benchmarks); on GPU xgrammar's kernel is used.
    """
    if scores.device.type != "cpu":
        xgr.apply_token_bitmask_inplace(scores, bitmask.to(scores.device, non_blocking=True), indices=list(rows) if rows is not None else None)
        return
    vocab = scores.shape[-1]
    packed = bitmask.numpy() if rows is None else bitmask.numpy()[list(rows)]
    words = (vocab + 31) // 32
    dense = (packed[:, :words] == -1).all(axis=1)  # every token allowed (e.g. inside a string): nothing to do
    if dense.all():
        return
    penalty = _PENALTY[packed.view(np.uint8)].reshape(len(packed), -1)[:, :vocab]
    if rows is None and scores.dtype == torch.float32 and scores.is_contiguous():
        np.add(scores.numpy(), penalty, out=scores.numpy())
    elif rows is None:
        scores.add_(torch.from_numpy(penalty).to(scores.dtype))
    else:
        idx = torch.as_tensor(list(rows))
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
