"""The decoding path: one grammar state per request, masks filled for the whole batch at once.

`GrammarState` is what a decoder asks of a request's grammar (the shape of vLLM's
`StructuredOutputGrammar`): accept the sampled tokens, roll back, say whether it terminated, the
text it forces next (jump-forward), fill its row of the token bitmask; with a budget, also keep
every output completable within its remaining tokens (`constrained.budget`). The logits processor
(`transformers` generate) and the server's engine both keep one per sequence and hand the live
ones to a `GrammarBatch`, which fills every row's mask in one call (xgrammar's
`BatchGrammarMatcher`, C++ threads) and applies them to the logits (`constrained.masks`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import xgrammar as xgr

from . import guards
from .budget import RowBudget
from .lazy import LazyMatcher
from .masks import apply_bitmask_


class GrammarState:
    """One sequence's position in its compiled grammar, and its token budget (`constrained.budget`)
    when the decoder gave one."""

    __slots__ = ("matcher", "budget")

    def __init__(self, compiled: Any, stop_token_ids: Sequence[int] | None = None, budget: RowBudget | None = None):
        # guarded where the grammar has guarded rules (long string bounds, open objects' keys)
        self.matcher = guards.matcher(compiled, override_stop_tokens=list(stop_token_ids) if stop_token_ids else None)
        self.budget = budget

    def accept(self, token: int) -> bool:
        """Advance by one token; False (and no change) when the grammar refuses it."""
        if not self.matcher.accept_token(int(token)):
            return False
        if self.budget is not None:
            self.budget.advance(int(token))
        return True

    def accept_tokens(self, tokens: Sequence[int]) -> int:
        """Advance token by token; returns how many were accepted before the first refusal."""
        for n, token in enumerate(tokens):
            if not self.accept(token):
                return n
        return len(tokens)

    def rollback(self, num_tokens: int) -> None:
        if num_tokens:
            self.matcher.rollback(num_tokens)
            if self.budget is not None:
                self.budget.rewind(num_tokens)

    def is_terminated(self) -> bool:
        """The grammar is complete and its stop token was accepted: nothing more may follow."""
        return self.matcher.is_terminated()

    def is_completed(self) -> bool:
        """The text so far is a complete output (a stop token may end it now)."""
        return self.matcher.is_completed() or self.matcher.is_terminated()

    def forced_text(self) -> str:
        """Text the grammar forces next, for decoders that append several tokens at once: the
        budget's closer's answer, which does not mistake a choice between text and a marker token
        for forced text (xgrammar leaves `Token(id)` alternatives out) and stops short of a closing
        marker's unfinished start (the budget's way out stays open). Without a budget, "": there is
        no closer that knows the markers."""
        if self.matcher.is_terminated():
            return ""
        if self.budget is None:  # xgrammar's own string runs past marker-token choices: only the closer knows them
            return ""
        return self.budget.closer.jump_text(self.matcher)

    def jump(self, feedable: Callable[[str], list[int]], limit: int) -> list[int]:
        """Accept the tokens of the text the grammar forces now (at most `limit`) and return them;
        [] when nothing is forced. `feedable` (`constrained.tokenizer.ForcedTokens`) tokenizes the
        text as a whole, so the model sees the tokens it would have written (not xgrammar's
        byte-wise path), and leaves a last piece the next text may merge with to the model
        (retokenization at the boundary). With a budget this is safe near its end too: the forced
        text is the start of the budget's way out, tokenized the same way, so a jump shortens the
        way out by the tokens it uses. A token the grammar refuses takes the whole jump back."""
        forced = self.forced_text()
        if not forced or limit <= 0:
            return []
        ids = feedable(forced)[:limit]
        accepted = self.accept_tokens(ids)
        if accepted < len(ids):
            self.rollback(accepted)
            return []
        return ids

    def fill(self, bitmask: torch.Tensor, row: int) -> None:
        self.matcher.fill_next_token_bitmask(bitmask, row)

    @property
    def lazy(self) -> bool:
        """Served by llguidance (`constrained.lazy`): its masks are not xgrammar's to batch."""
        return isinstance(self.matcher, LazyMatcher)

    def xgrammar_matcher(self) -> xgr.GrammarMatcher:
        """xgrammar's own matcher (for its batched fill; `after_fill` then adds the guard)."""
        return guards.xgrammar_matcher(self.matcher)

    def after_fill(self, bitmask: torch.Tensor, row: int) -> None:
        """What the guards add to a row xgrammar filled."""
        guards.restrict(self.matcher, bitmask, row)


# live rows from which the batched fill uses threads (two per full 128 rows, at most one per core)
THREADED_FILL_FROM = 128


class GrammarBatch:
    """The token bitmask of a batch and the worker that fills it. Rows without a grammar (None),
    or whose grammar terminated, are left free."""

    def __init__(self, vocab_size: int, capacity: int = 1):
        self.vocab_size = vocab_size
        self.bitmask = xgr.allocate_token_bitmask(max(1, capacity), vocab_size)
        self._batches: dict[int, xgr.BatchGrammarMatcher] = {}  # by thread count
        self._states: Sequence[GrammarState | None] = ()

    def _batch(self, rows: int) -> xgr.BatchGrammarMatcher:
        """xgrammar's batched fill with threads only for large batches: a row's fill takes a few
        µs, waking a pool thread more. On the 16-core host of an H200, 64 rows filled in 273 µs on
        one thread and 405 µs with xgrammar's "auto" threads (16 rows: 89 vs 674 µs)."""
        threads = 1 if rows < THREADED_FILL_FROM else min(os.cpu_count() or 1, rows // THREADED_FILL_FROM * 2)
        batch = self._batches.get(threads)
        if batch is None:
            batch = self._batches[threads] = xgr.BatchGrammarMatcher(max_threads=threads)
        return batch

    def _ensure(self, rows: int) -> None:
        if rows > self.bitmask.shape[0]:
            self.bitmask = xgr.allocate_token_bitmask(max(rows, 2 * self.bitmask.shape[0]), self.vocab_size)

    def fill(self, states: Sequence[GrammarState | None], failures: dict[int, Exception] | None = None) -> list[int]:
        """Fill the masks of the rows whose grammar is live; returns those rows. With `failures`,
        a row whose grammar raises is recorded there (and left out) instead of failing the batch."""
        rows = [i for i, s in enumerate(states) if s is not None and not s.is_terminated()]
        self._states = states
        if not rows:
            return rows
        self._ensure(len(states))
        # xgrammar's rows in one batched call (two or more of them); the rest, llguidance's (large
        # grammars) among them, one by one
        batched = [i for i in rows if not states[i].lazy]  # type: ignore[union-attr]
        if len(batched) < 2:
            batched = []
        try:
            if batched:
                self._batch(len(batched)).batch_fill_next_token_bitmask([states[i].xgrammar_matcher() for i in batched], self.bitmask, indices=batched)  # type: ignore[union-attr]
                for i in batched:
                    states[i].after_fill(self.bitmask, i)  # type: ignore[union-attr]
            for i in sorted(set(rows) - set(batched)):
                states[i].fill(self.bitmask, i)  # type: ignore[union-attr]
        except Exception:
            if failures is None:
                raise
            rows = self._fill_each(states, rows, failures)
        return rows

    def _fill_each(self, states: Sequence[GrammarState | None], rows: list[int], failures: dict[int, Exception]) -> list[int]:
        """The batched fill failed: fill row by row, so that only the rows that fail are left out."""
        ok = []
        for i in rows:
            try:
                states[i].fill(self.bitmask, i)  # type: ignore[union-attr]
                ok.append(i)
            except Exception as err:  # noqa: BLE001 - recorded for the caller
                failures[i] = err
        return ok

    def apply(self, scores: torch.Tensor, rows: Sequence[int], failures: dict[int, Exception] | None = None) -> None:
        """Mask `scores` (one row per state given to `fill`) where the filled rows forbid, then let
        each row with a budget keep only the tokens after which it can still finish. With
        `failures`, a budget that raises is recorded there instead of failing the batch."""
        if not rows:
            return
        apply_bitmask_(scores, self.bitmask[: scores.shape[0]], None if len(rows) == scores.shape[0] else rows)
        for i in rows:
            state = self._states[i]
            if state is not None and state.budget is not None:
                try:
                    state.budget.restrict(state, scores, i)
                except Exception as err:
                    if failures is None:
                        raise
                    failures[i] = err


def accept_all(states: Sequence[GrammarState | None], tokens: Sequence[int]) -> None:
    """Each live row accepts its sampled token; a refusal means the mask was not applied."""
    for i, (state, token) in enumerate(zip(states, tokens)):
        if state is None or state.is_terminated():
            continue
        if not state.accept(token):
            raise ValueError(f"row {i}: token {int(token)} is not allowed by the grammar (was the mask applied?)")
