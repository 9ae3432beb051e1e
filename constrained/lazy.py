"""Large grammars served with lazy masks: llguidance's matcher behind xgrammar's matcher interface.

xgrammar computes the token masks of every rule position before the first token: its compile time
grows with the grammar (on this project's CPU machine, 2.7 s for the 7,800 rules of a 300 KB
configuration schema's grammar). llguidance builds a parser in a fraction of that and computes
each mask when it is asked for (tens of µs). So a grammar whose text reaches
`LAZY_FROM_CHARS` is translated to llguidance's Lark (`constrained.lark`, the same language or
`NotTranslatable`) and served by `LazyMatcher`; smaller grammars, and those the translation
refuses, stay with xgrammar, whose precomputed masks are faster per token.

`LazyMatcher` has the methods of xgrammar's `GrammarMatcher` that decoders, the budget's closer
(`constrained.budget`) and vLLM call, with xgrammar's meaning where llguidance differs:
- a refused token or string leaves the matcher as it was (llguidance's `consume_token` would put
  it in an error state: `try_consume_tokens` is used);
- a stop token is accepted only where the grammar is complete, and terminates; llguidance keeps
  no stop token in its history, so this class does;
- `accept_string` is one step for `rollback`, however many tokens it took;
- `find_jump_forward_string` spells a forced special token as xgrammar does on our marker
  vocabulary (`tokenizer.MARKER_BYTE` first), so the closer reads both alike.
The run-time guards of xgrammar's route (`constrained.guards`) are not needed here: the translation
writes guarded lengths and keys as exact regexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

from .tokenizer import MARKER_BYTE, serial
from .types import LAZY_FROM_CHARS

__all__ = ["LAZY_FROM_CHARS", "LazyGrammar", "LazyMatcher", "llguidance_tokenizer"]


@dataclass(frozen=True)
class LazyGrammar:
    """A grammar for llguidance: its Lark text, compiled once (`llguidance.LLMatcher` checks it on
    construction) and copied for each matcher."""

    lark: str
    tokenizer: Any  # llguidance.LLTokenizer
    stop_token_ids: tuple[int, ...]
    vocab_size: int
    first: Any  # a fresh llguidance.LLMatcher, deep-copied for every sequence

    @classmethod
    def build(cls, lark: str, tokenizer: Any, stop_token_ids: Sequence[int], vocab_size: int) -> LazyGrammar:
        import llguidance

        matcher = llguidance.LLMatcher(tokenizer, lark, log_level=0, limits=_limits())
        if matcher.is_error():
            raise ValueError(f"llguidance refused the translated grammar: {matcher.get_error()[:300]}")
        return cls(lark, tokenizer, tuple(stop_token_ids), vocab_size, matcher)

    @property
    def memory_bytes(self) -> int:
        """An estimate of what this grammar holds (llguidance does not report it): its text, and 10
        bytes of parser per character of it, the most measured (RSS per grammar built: 0.6, 6.3 and
        9.8 bytes per character for three large schemas' grammars of 0.27-1.09 MB)."""
        return 11 * len(self.lark)


def _limits() -> Any:
    """llguidance's resource limits, raised 40-100x: a limit reached mid-output is an error there
    (xgrammar has none). Its defaults (2,000 items in a parser row, 50,000 items and 200,000 lexer
    fuel per step) broke a 6,000-value enum before enums became one lexeme (`constrained.lark`);
    no grammar measured since comes near them, but a large schema's should not be the first."""
    import llguidance

    return llguidance.LLParserLimits(max_items_in_row=100_000, step_max_items=2_000_000, step_lexer_fuel=20_000_000, verbose_errors=False)


class LazyMatcher:
    """One sequence's position in a `LazyGrammar`, with xgrammar's `GrammarMatcher` methods."""

    def __init__(self, grammar: LazyGrammar, *, override_stop_tokens: Sequence[int] | None = None,
                 max_rollback_tokens: int = -1, _from: LazyMatcher | None = None):
        self.grammar = grammar
        self._max_rollback = max_rollback_tokens
        if _from is None:
            self._stops = tuple(override_stop_tokens) if override_stop_tokens else grammar.stop_token_ids
            self._stop_set = frozenset(self._stops)
            # llguidance sets its own stop tokens' bits where the grammar is complete: those are
            # cleared and ours set (word, bit) after each fill; worked out once, forks share them
            self._clear = _bits_of(self._stop_set | set(grammar.tokenizer.eos_tokens), grammar.vocab_size)
            self._stop_bits = _bits_of(self._stop_set, grammar.vocab_size)
            self._ll = grammar.first.deep_copy()
            self._steps: list[int] = []  # llguidance tokens per accepted step (0: the stop token)
            self._terminated = False
        else:
            self._stops, self._stop_set, self._clear, self._stop_bits = _from._stops, _from._stop_set, _from._clear, _from._stop_bits
            self._ll = _from._ll.deep_copy()
            self._steps = list(_from._steps)
            self._terminated = _from._terminated

    # -- xgrammar's interface

    def accept_token(self, token_id: int, *, debug_print: bool = False) -> bool:
        if self._terminated:
            return False
        token_id = int(token_id)
        if token_id in self._stop_set:
            if not self._ll.is_accepting():
                return False
            self._terminated = True
            self._steps.append(0)
            return True
        if self._ll.try_consume_tokens([token_id]) != 1:
            self._check()
            return False
        self._steps.append(1)
        return True

    def _check(self) -> None:
        """A refused token leaves llguidance as it was; an error (a resource limit) breaks it: say so
        rather than read it as a refusal."""
        if self._ll.is_error():
            raise RuntimeError(f"llguidance: {self._ll.get_error()[:300]}")

    def accept_string(self, input_str: str | bytes, *, debug_print: bool = False) -> bool:
        """Text, tokenized over the vocabulary's text tokens only (a special token's spelling stays
        text, as xgrammar reads a string); one step for rollback. On refusal nothing changes."""
        if self._terminated:
            return False
        try:
            text = input_str if isinstance(input_str, str) else bytes(input_str).decode("utf-8")
        except UnicodeDecodeError:
            return False
        if not text:
            return True
        tokens = self.grammar.tokenizer.greedy_tokenize(text)
        took = self._ll.try_consume_tokens(tokens)
        if took != len(tokens):
            self._check()
            if took:
                self._ll.rollback(took)
            return False
        self._steps.append(len(tokens))
        return True

    def rollback(self, num_tokens: int) -> None:
        if num_tokens > len(self._steps):
            raise ValueError(f"cannot roll back {num_tokens} steps: {len(self._steps)} were taken")
        undo = 0
        for _ in range(num_tokens):
            n = self._steps.pop()
            if n == 0:
                self._terminated = False
            undo += n
        if undo:
            self._ll.rollback(undo)

    def reset(self) -> None:
        self._ll.reset()
        self._steps.clear()
        self._terminated = False

    def fork(self) -> LazyMatcher:
        return LazyMatcher(self.grammar, max_rollback_tokens=self._max_rollback, _from=self)

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0, *, debug_print: bool = False) -> bool:
        """llguidance's mask written into row `index` of xgrammar's packed bitmask (same layout);
        the stop tokens allowed exactly where the grammar is complete."""
        row = bitmask[index]
        if self._terminated:
            row.fill_(0)
            return True
        words = row.numpy()
        self._ll.unsafe_compute_mask_ptr(row.data_ptr(), words.nbytes)  # releases the GIL
        self._check()
        bits = words.view(np.uint32)
        np.bitwise_and.at(bits, self._clear[0], ~self._clear[1])
        if self._ll.is_accepting():
            np.bitwise_or.at(bits, self._stop_bits[0], self._stop_bits[1])
        return True

    def is_terminated(self) -> bool:
        return self._terminated

    def is_completed(self) -> bool:
        return self._terminated or self._ll.is_accepting()

    def find_jump_forward_string(self) -> str:
        """The text the grammar forces next; a forced special token is MARKER_BYTE (what follows
        it is not read: callers accept the marker and ask again); "" inside a character."""
        if self._terminated:
            return ""
        # on a copy: llguidance 1.7.6 fails the next mask after compute_ff_bytes ("NoExtensionBias")
        forced = self._ll.deep_copy().compute_ff_bytes()
        head, special, _ = forced.partition(b"\xff")  # llguidance spells a special token \xff[id]
        whole = _whole_utf8_length(head)  # the head may end inside a character: stop before it
        return head[:whole].decode("utf-8") + (MARKER_BYTE.decode() if special and whole == len(head) else "")

    @property
    def stop_token_ids(self) -> list[int]:
        return list(self._stops)

    @property
    def max_rollback_tokens(self) -> int:
        return self._max_rollback


def _bits_of(tokens: set[int] | frozenset[int], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The (word, bit) of each token below `vocab_size` in a packed bitmask row."""
    ids = np.array(sorted(t for t in tokens if t < vocab_size), dtype=np.int64)
    return ids >> 5, np.uint32(1) << (ids & 31).astype(np.uint32)


def _whole_utf8_length(data: bytes) -> int:
    """Bytes of `data` up to its last whole character."""
    for cut in range(len(data), max(-1, len(data) - 4), -1):
        try:
            data[:cut].decode("utf-8")
            return cut
        except UnicodeDecodeError:
            continue
    return 0


def llguidance_tokenizer(tokenizer: Any, vocab_size: int, stop_token_ids: Sequence[int]) -> Any:
    """llguidance's view of a Hugging Face fast tokenizer (~1 s for a 129K vocabulary: build once),
    or None where it cannot be built (a slow tokenizer; llguidance not installed)."""
    try:
        import llguidance.hf
    except ImportError:
        return None
    with serial(tokenizer).lock:  # it copies the Rust tokenizer: no other user meanwhile
        try:
            return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=list(stop_token_ids) or None)
        except (ValueError, TypeError, RuntimeError):
            return None
