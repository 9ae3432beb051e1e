"""Budget-aware decoding: every output completes within the token budget.

A grammar guarantees that a *finished* output parses; a decoder that runs out of tokens (`max_tokens`,
the context) stops mid-call. Here the decoder knows how many tokens are left and, from the grammar
state, a way to finish: `Closer.plan` walks a fork of the matcher to the end along the tokens that
close what is open soonest (EOS, the dialect's closing markers, quotes and brackets, the forced text,
else the shortest allowed token), and returns that token path. Its length `U` is how many tokens
the state still needs.

`RowBudget.restrict` runs after the grammar mask, before sampling. Far from the end of the budget it
does nothing. Near it (the *zone*: tokens left <= U + margin) it keeps only tokens after which a
plan still fits in what is left: the model's top-k allowed tokens, each checked on a fork, and the
plan's own next token, which fits by construction. When the plan fills the budget exactly, only
the plan's token is allowed. By induction every row ends with a complete output by its last token.

The margin covers what one token can add to `U` (opening a section or an object with required
properties adds their shortest completion); it is the shortest call of the grammar plus 8.
A token that adds more than the margin outside the zone is the one case the check does not see,
and it is checked from the next step on (README: budgets).

When the model's own most likely token was refused, the budget *forced* the close from that
token on: the decoder reports `finish_reason: "length"` and flags the calls open from then on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import xgrammar as xgr

from .dialect import Dialect
from .types import BUDGET_CALLS  # noqa: F401  (re-exported: the policy names live where the CLIs can read them cheaply)

# Candidates checked per step in the zone (the model's most likely allowed tokens).
TOP_K = 3
# Outside the zone, U is re-measured every this many steps (it moves slowly; each plan costs a
# few dozen mask fills).
REFRESH_EVERY = 8
# The plan is searched at most this many tokens past the budget before giving up (a grammar with
# no short way out, e.g. a pattern that loops under the preference order).
PLAN_SLACK = 64

# A plan that repeats one move this many times in a row is going nowhere under that order.
REPEAT_LIMIT = 48
# A walk that comes back to states it has been in this many times is going round in circles
# (closing nested brackets revisits states too, hence the room).
REVISIT_LIMIT = 256

_QUOTES = ('"', "'")
_BRACKETS = ("}", "]", ")")
_VALUES = ("0", "null", "None", "true", "True", "false", "False")
_SEPARATORS = (",", ":")
_MAX_FORCED_MARKERS = 16  # marker tokens one jump may run through (each costs a few matcher calls)


class Closer:
    """Finds a short way to finish from any grammar state, for one tokenizer and dialect.

    A plan is a greedy walk over *moves* (token sequences) in a preference order: stop tokens,
    the dialect's closing markers, quotes and brackets, its opening markers (a required call must
    write them anyway), short values, separators; the text the grammar forces is taken as it is
    tokenized; when no move fits, the allowed token with the shortest text. Two orders are tried:
    quotes before multi-token markers (inside a string, a marker's characters would only be more
    string), then markers first (inside free text such as a think block, a quote would be)."""

    def __init__(self, tokenizer: Any, dialect: Dialect, vocab_size: int, stop_ids: Sequence[int], token_ids: dict[str, int],
                 token_chars: np.ndarray):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.token_chars = token_chars
        # a cache of this Closer's own (one on the class would hold every Closer, and its
        # tokenizer, for as long as the process runs)
        self._encode = lru_cache(maxsize=4096)(self._encode_text)
        # mask buffers per thread: the server plans on its engine thread and checks budgets on
        # request threads with one Closer
        self._buffers = threading.local()
        self.marker_ids = np.array(sorted(t for t in token_ids.values() if 0 <= t < vocab_size), dtype=np.int64)
        self.marker_list = [int(t) for t in self.marker_ids]
        self.marker_text = {int(t): text for text, t in token_ids.items() if 0 <= t < vocab_size}
        self.short_tokens = np.flatnonzero(token_chars == 1)  # one-byte tokens, by id
        self.short_words = self.short_tokens >> 5
        self.short_bits = (self.short_tokens & 31).astype(np.uint32)

        def moves(texts: Sequence[str]) -> list[tuple[int, ...]]:
            out = []
            for text in texts:
                ids = (token_ids[text],) if text in token_ids else self._encode(text)
                if ids and all(0 <= t < vocab_size for t in ids):
                    out.append(ids)
            return out

        stops = [(int(t),) for t in stop_ids]
        # raw values (the xml encoding) end with a tag, and hold `"` as text
        # (with its framing too: `\n</parameter>` where a value ends with a newline)
        value_end = dialect.codec.value_end.strip()
        ends = list(dict.fromkeys([dialect.codec.value_end, value_end])) if value_end else []
        closing = moves([*_closing_markers(dialect), *ends])
        opening = moves([*_opening_markers(dialect), *dialect.codec.markup()])
        json_quote = [] if value_end else moves(('"',))
        single_closing = [m for m in closing if len(m) == 1 and m[0] in token_ids.values()]  # special tokens
        multi_closing = [m for m in closing if m not in single_closing]
        quotes, brackets = moves(_QUOTES), moves(_BRACKETS)
        tail = [*opening, *moves(_VALUES), *moves(_SEPARATORS)]
        # moves that may be string content (all but stops, markers and the JSON quote, which a
        # JSON string cannot hold raw): checked for going round in a circle
        structural = {*stops, *single_closing, *multi_closing, *json_quote, *opening}
        if value_end:  # a raw value may spell any markup that is not a special token
            structural = {*stops, *single_closing}
        # what surely closes something (for looking ahead): a `'` or `}` may be string content
        closers = [*stops, *single_closing, *multi_closing, *json_quote]
        # a closing marker written as text, with its text: forced text may be the prefix it shares
        # with an opening one (PLaMo's `<|plamo:` of `<|plamo:end_tool_requests:plamo|>` and
        # `<|plamo:begin_tool_request:plamo|>`), and the walk must not lose the way out by taking it
        self.text_closers = [(m, self.tokenizer.decode(list(m))) for m in multi_closing]
        self.orders = [
            _Order([*stops, *single_closing, *quotes, *multi_closing, *brackets, *tail], structural, closers),
            _Order([*stops, *single_closing, *multi_closing, *quotes, *brackets, *tail], structural, closers),
        ]

    def _encode_text(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))

    @property
    def bitmask(self) -> torch.Tensor:
        return self._buffer("bitmask")

    @property
    def scratch(self) -> torch.Tensor:
        """A second buffer, for looking one step ahead while `bitmask` is in use."""
        return self._buffer("scratch")

    def _buffer(self, name: str) -> torch.Tensor:
        buffer = getattr(self._buffers, name, None)
        if buffer is None:
            buffer = xgr.allocate_token_bitmask(1, self.vocab_size)
            setattr(self._buffers, name, buffer)
        return buffer

    def _row(self, m: xgr.GrammarMatcher, bitmask: Any = None) -> np.ndarray:
        bitmask = self.bitmask if bitmask is None else bitmask
        m.fill_next_token_bitmask(bitmask, 0)
        return bitmask[0].numpy().view(np.uint32)

    def _move(self, m: xgr.GrammarMatcher, order: _Order, seen: set[int]) -> tuple[int, ...]:
        """The first move of `order` the grammar takes from `m` (accepted on `m`) and that leads
        somewhere (a move that may be string content and leaves the allowed tokens as they were,
        such as `'` inside an email's local part, goes round in a circle); else a one-character
        token found by looking one step ahead; () when nothing is allowed. `seen`: hashes of the
        allowed-token sets this walk has been in."""
        row = self._row(m)
        here = hash(row.tobytes())
        seen.add(here)
        for k in np.flatnonzero((row[order.words] >> order.bits) & 1).tolist():
            move = order.moves[k]
            if _take(m, move):
                # string content that leads back to where this walk has been goes round in a
                # circle (`'` then `.` then `'` in an email's local part)
                if not order.content_like[k] or hash(self._row(m, self.scratch).tobytes()) not in seen:
                    return move
                m.rollback(len(move))
        return self._look_ahead(m, row, order, seen)

    def _look_ahead(self, m: xgr.GrammarMatcher, row: np.ndarray, order: _Order, seen: set[int]) -> tuple[int, ...]:
        """A one-character token after which a closing move is allowed, else one that leads to
        allowed tokens this walk has not been in (a pattern's next part: `@` after an email's
        local part), else the allowed token with the shortest text."""
        short = self.short_tokens[np.flatnonzero((row[self.short_words] >> self.short_bits) & 1)].tolist()
        fresh = None
        for token in short:
            if not m.accept_token(token):
                continue
            after = self._row(m, self.scratch)
            if ((after[order.closer_words] >> order.closer_bits) & 1).any():
                return (token,)
            if fresh is None and hash(after.tobytes()) not in seen:
                fresh = token
            m.rollback(1)
        if fresh is None:
            candidates = np.flatnonzero(np.unpackbits(row.view(np.uint8), bitorder="little")[: self.vocab_size])
            if not len(candidates):
                return ()
            fresh = int(candidates[np.argmin(self.token_chars[candidates])])  # shortest text, lowest id
        return (fresh,) if m.accept_token(fresh) else ()

    def replays(self, matcher: xgr.GrammarMatcher, plan: Sequence[int], first: int | None = None) -> bool:
        """Whether `plan` (after the token `first`, when given) still finishes the output from
        `matcher`'s state. Accepting tokens on a fork costs no mask fill, so a plan outlives the
        step it was made in: string content leaves the way out of the string as it was."""
        if not plan:
            return False
        fork = matcher.fork()
        if first is not None:
            if not fork.accept_token(first):
                return False
            if fork.is_terminated():  # `first` was the stop token: the output is finished already
                return True
        return all(fork.accept_token(t) for t in plan) and fork.is_terminated()

    def plan(self, matcher: xgr.GrammarMatcher, limit: int) -> list[int] | None:
        """Tokens that finish the output from `matcher`'s state (the stop token included), or None
        when none was found within `limit` tokens. `matcher` is not changed (forks walk); the
        second order is tried only when the first finds no way out."""
        for order in self.orders:
            plan = self._walk(matcher.fork(), order, limit)
            if plan is not None:
                return plan
        return None

    def _walk(self, m: xgr.GrammarMatcher, order: _Order, limit: int) -> list[int] | None:
        out: list[int] = []
        last: tuple[int, ...] = ()
        repeats = 0
        seen: set[int] = set()
        revisits = 0
        while not m.is_terminated():
            if len(out) > limit or revisits > REVISIT_LIMIT:
                return None  # too long, or going round in circles
            forced = self.forced(m)
            took = 0
            if forced:
                head = self._before_closer(forced)
                if not head:  # the forced text begins a closing marker: take the marker where it is allowed
                    closing = self._closing_behind(m, forced)
                    if closing:
                        out += closing
                        last, repeats = (), 0
                        continue
                forced = head or forced
            if forced:
                for t in self._encode(forced):
                    if not m.accept_token(t):
                        break
                    out.append(t)
                    took += 1
                    if self._marker_allowed(m):
                        break  # a marker may come here: the rest was not forced after all
            if took:
                last, repeats = (), 0
                continue
            known = len(seen)
            move = self._move(m, order, seen)
            revisits += len(seen) == known
            if not move:
                return None
            repeats = repeats + 1 if move == last else 0
            if repeats >= REPEAT_LIMIT:
                return None
            last = move
            out += move
        return out if len(out) <= limit else None

    def _before_closer(self, forced: str) -> str:
        """`forced` up to where its rest is the unfinished start of a closing marker spelled as
        text (whose next part the grammar leaves open: close, or open another call)."""
        for i in range(len(forced)):
            rest = forced[i:]
            if any(len(rest) < len(text) and text.startswith(rest) for _, text in self.text_closers):
                return forced[:i]
        return forced

    def _closing_behind(self, m: xgr.GrammarMatcher, forced: str) -> tuple[int, ...]:
        """A closing marker spelled as text that begins with the `forced` text, accepted on `m`;
        () when there is none."""
        for move, text in self.text_closers:
            if text.startswith(forced) and _take(m, move):
                return move
        return ()

    def jump_text(self, m: xgr.GrammarMatcher) -> str:
        """The forced text a decoder may feed at once (jump-forward): `forced`, then on through
        each marker token that is the one token the grammar allows next (GLM-4.7's
        `</arg_key><arg_value>`, Kimi-K2's `<|tool_call_argument_begin|>` after the index) and the
        text forced after it; short of a closing marker's unfinished start, as the walk takes it,
        so a jump never leads past the way out."""
        raw = jump_forward_string(m)
        if not raw or not self.marker_list:
            return self._before_closer(raw.split("\x01", 1)[0])
        walk, text = m.fork(), ""
        for _ in range(_MAX_FORCED_MARKERS):
            head, marker_next, _ = raw.partition("\x01")  # markers are spelled with MARKER_BYTE
            taken = self._walk_forced(walk, head)
            text += taken
            if taken != head or not marker_next or walk.is_completed():
                break
            # only a marker's spelling may come here (no text writes the byte): which ones?
            only = self._only_marker(walk)
            if only is None:
                break
            text += self.marker_text[only]
            raw = jump_forward_string(walk)
        return self._before_closer(text)

    def forced(self, m: xgr.GrammarMatcher) -> str:
        """The text the grammar forces next, up to the first marker token. xgrammar's own answer
        leaves out `Token(id)` alternatives (it says `{"name"` is forced where a section-end
        marker token is also allowed), so it is trusted only while no marker token is allowed."""
        forced = jump_forward_string(m).split("\x01", 1)[0]  # markers are spelled with MARKER_BYTE
        if not forced or not self.marker_list:
            return forced
        return self._walk_forced(m.fork(), forced)

    def _walk_forced(self, walk: xgr.GrammarMatcher, forced: str) -> str:
        """`forced` as far as `walk` takes it before a marker token could come instead; the walk
        is at its end when all of it is returned."""
        # A marker may also become allowed part-way: after MiniMax-M1's `"}}\n` both `</tool_calls>`
        # and the next call's `{"name"` may follow, and xgrammar's string runs on into the latter.
        # So the text is walked on a fork and cut where a marker could come (at the start: no
        # forced text). Each marker is tried by accepting it on the walk itself (cheaper than a
        # mask fill for a dialect's few markers): a refused token leaves the walk as it was, and
        # the walk ends at the first one accepted.
        for i, ch in enumerate(forced):
            if any(walk.accept_token(t) for t in self.marker_list):
                return forced[:i]
            if not walk.accept_string(ch):
                return forced[:i]
        return forced

    def _only_marker(self, walk: xgr.GrammarMatcher) -> int | None:
        """The marker token `walk` accepts where it is, accepted, if it accepts exactly one; else
        None and the walk unchanged."""
        found = None
        for t in self.marker_list:
            if walk.accept_token(t):
                walk.rollback(1)
                if found is not None:
                    return None
                found = t
        if found is not None:
            walk.accept_token(found)
        return found

    def _marker_allowed(self, m: xgr.GrammarMatcher) -> bool:
        if not len(self.marker_ids):
            return False
        row = self._row(m)
        return bool(((row[self.marker_ids >> 5] >> (self.marker_ids & 31).astype(np.uint32)) & 1).any())


def _take(m: xgr.GrammarMatcher, move: Sequence[int]) -> bool:
    """Accept the whole move on `m`, or nothing of it."""
    for took, t in enumerate(move):
        if not m.accept_token(t):
            if took:
                m.rollback(took)
            return False
    return True


def jump_forward_string(m: xgr.GrammarMatcher) -> str:
    """xgrammar's forced text, or "" where it is not whole UTF-8 (the matcher is inside a
    multi-byte character after a byte-level token, and xgrammar's decoding of it raises)."""
    try:
        return m.find_jump_forward_string()
    except UnicodeDecodeError:
        return ""


class _Order:
    """Moves in preference order, with their first tokens' bitmask positions for one vectorised
    test; which may be string content; and the closing moves' first tokens (for looking ahead)."""

    def __init__(self, moves: list[tuple[int, ...]], structural: set[tuple[int, ...]], closers: list[tuple[int, ...]]):
        self.moves = list(dict.fromkeys(moves))
        self.content_like = [m not in structural for m in self.moves]
        first = np.array([m[0] for m in self.moves], dtype=np.int64)
        self.words = first >> 5
        self.bits = (first & 31).astype(np.uint32)
        ends = np.array(sorted({c[0] for c in closers}), dtype=np.int64)
        self.closer_words = ends >> 5
        self.closer_bits = (ends & 31).astype(np.uint32)


def _single(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer.encode(text, add_special_tokens=False) if text else []
    return list(ids) if len(ids) == 1 else []


def _closing_markers(d: Dialect) -> list[str]:
    """The dialect's literals that close something: the think block's end, the section's end, and
    what follows the arguments in a call (stripped of whitespace; one-character literals such as
    a JSON `}` are left to the generic brackets)."""
    out = []
    if d.reasoning:
        out.append(d.reasoning[1])
    if d.section_end.strip():
        out.append(d.section_end.strip())
    pieces = list(d.pieces)  # type: ignore[attr-defined]
    after = [p for p in pieces[[getattr(p, "name", None) for p in pieces].index("arguments") + 1:] if isinstance(p, str)]
    out += [p.strip() for p in after if p.strip()]
    return [t for t in out if len(t) > 1]


def _opening_markers(d: Dialect) -> list[str]:
    """The dialect's other literals: the section's start and the call template's markers (what a
    required call must write anyway). The think block's opener is not among them."""
    literals = [d.section_begin, *(p for p in d.pieces if isinstance(p, str))]  # type: ignore[attr-defined]
    return [t.strip() for t in literals if len(t.strip()) > 1 and (not d.reasoning or t.strip() != d.reasoning[0])]


def token_lengths(decoded_vocab: Sequence[bytes], vocab_size: int, special_ids: Sequence[int]) -> np.ndarray:
    """Bytes of each token's text; special and unused ids count as very long."""
    lengths = np.full(vocab_size, 1 << 20, dtype=np.int64)
    n = min(len(decoded_vocab), vocab_size)
    lengths[:n] = [len(b) or (1 << 20) for b in decoded_vocab[:n]]
    lengths[[i for i in special_ids if 0 <= i < vocab_size]] = 1 << 20
    return lengths


class RowBudget:
    """One sequence's budget: how many tokens may still be generated, and the plan that fits."""

    __slots__ = ("closer", "margin", "left", "plan", "exact", "since_refresh", "refresh_every", "forced_at", "generated", "retry_at",
                 "blocked", "_candidates")

    def __init__(self, closer: Closer, max_tokens: int, margin: int):
        self.closer = closer
        self.margin = margin
        self.left = max_tokens  # tokens that may still be generated, this step's included
        self.plan: list[int] | None = None  # a way to finish from the current state
        self.exact = False  # `plan` was found from the current state (not an older one)
        self.since_refresh = REFRESH_EVERY
        self.refresh_every = REFRESH_EVERY  # steps until U is measured again (more when the zone is far)
        self.forced_at: int | None = None  # index of the first token the budget forced
        self.generated = 0
        self.retry_at = 0  # after a search found no way out, the next one waits until this step
        self.blocked = 0  # steps where every token the budget kept was already masked (see `restrict`'s `unmask`)
        self._candidates: dict[int, list[int]] = {}

    def _measure(self, state: Any) -> list[int] | None:
        self.plan = self.closer.plan(state.matcher, self.left + PLAN_SLACK)
        self._measured()
        return self.plan

    def _measured(self) -> None:
        """`plan` holds from the current state. The next measure is due when the zone could have
        come near: each token takes one from what is left and adds at most `margin` to U, so the
        gap to the zone's edge closes by at most margin + 1 per step: REFRESH_EVERY steps, or more
        while the budget is far from running out."""
        self.exact = True
        self.since_refresh = 0
        gap = self.left - (len(self.plan) if self.plan else 0) - 2 * self.margin
        self.refresh_every = max(REFRESH_EVERY, gap // (self.margin + 1))

    def in_zone(self, state: Any) -> bool:
        if self.generated < self.retry_at:
            return False  # no way out was found lately: searching again at every step would cost more than it finds
        stale = self.plan is None or (not self.exact and (self.since_refresh >= self.refresh_every or self.left <= len(self.plan) + 2 * self.margin))
        if stale:
            plan = self.plan
            if plan is not None and self.left > len(plan) + 2 * self.margin and self.closer.replays(state.matcher, plan):
                self._measured()  # the old way out still works: an upper bound on U, enough far from the zone
            else:
                self._measure(state)
        return self.plan is None or self.left <= len(self.plan) + self.margin

    def restrict(self, state: Any, scores: torch.Tensor, row: int | None = None, *, unmask: bool = True) -> bool:
        """Mask, in this row of `scores` (the grammar mask already applied; with `row`, that row of
        a batch's scores), every token after which the output could not be finished in the tokens
        left. Returns True when it forced the close (the model's most likely token was refused).
        Outside the zone this is a few comparisons: the row is not even indexed.

        When every token kept is already -inf (another processor ruled them out), `unmask` gives
        them back (the grammar's word wins over that processor's); with `unmask=False` (the mask is
        another engine's, which `state` only mirrors) the row is left as it was and `blocked` counts it."""
        if self._candidates:
            self._candidates = {}
        if not self.in_zone(state) or state.is_terminated():
            return False
        if row is not None:
            scores = scores[row]
        plan = self.plan
        if plan is None:  # no way out was found: the best remaining bet is the closing path's next token
            plan = self.closer.plan(state.matcher, 4 * (self.left + PLAN_SLACK)) or []
            self.plan = plan
        if not plan:
            self.plan, self.retry_at = None, self.generated + REFRESH_EVERY
            return False
        values, indices = torch.topk(scores, min(TOP_K, scores.shape[0]))
        top = [t for t, v in zip(indices.tolist(), values.tolist()) if v > float("-inf")]
        if not top:
            return False
        keep = {plan[0]}
        self._candidates[plan[0]] = plan[1:]
        if len(plan) < self.left:
            for token in top:
                if token in keep:
                    continue
                if self.closer.replays(state.matcher, plan, first=token):  # fits: len(plan) < self.left here
                    keep.add(token)  # the current plan still works after this token (string content)
                    self._candidates[token] = plan
                    continue
                fork = state.matcher.fork()
                if not fork.accept_token(token):
                    continue
                after = self.closer.plan(fork, self.left - 1)
                if after is not None and len(after) <= self.left - 1:
                    keep.add(token)
                    self._candidates[token] = after
        forced = top[0] not in keep
        kept = torch.tensor(sorted(keep), dtype=torch.long, device=scores.device)
        values = scores[kept].clone()
        if not bool((values > float("-inf")).any()):
            if not unmask:
                self.blocked += 1
                return False
            values.zero_()  # another processor ruled out every safe token: the grammar's word wins
        scores.fill_(float("-inf"))
        scores[kept] = values
        if forced and self.forced_at is None:
            self.forced_at = self.generated
        return forced

    def advance(self, token: int) -> None:
        """The row accepted `token`: one token less, and the plan moves on when it can."""
        self.generated += 1
        self.left -= 1
        self.since_refresh += 1
        if self._candidates and token in self._candidates:  # checked this step: its plan is exact for the new state
            self.plan, self.exact = self._candidates[token], True
            self._candidates = {}
        elif self.exact and self.plan and self.plan[0] == token:
            self.plan = self.plan[1:]
        else:
            self.exact = False  # an estimate now, measured again when it matters

    def rewind(self, num_tokens: int) -> None:
        """`num_tokens` accepted tokens were rolled back."""
        self.generated -= num_tokens
        self.left += num_tokens
        self.plan, self.exact = None, False
        self._candidates = {}

    @property
    def forced(self) -> bool:
        return self.forced_at is not None




class BudgetTooSmall(ValueError):
    """No complete answer fits in the budget (a required or named call needs more tokens)."""

    def __init__(self, budget: int, minimum: int):
        self.budget = budget
        self.minimum = minimum
        super().__init__(f"a budget of {budget} tokens cannot hold a complete answer: the shortest needs {minimum} tokens")


# A whole answer's closing plan is searched this far at most (a tool call is tens of tokens).
MINIMUM_SEARCH = 4096


def check_budget(closer: Closer, state: Any, budget: int | None) -> int | None:
    """The fewest tokens of a complete answer from `state` (a fresh one: the whole output), or
    None when no closing plan was found (a pattern the closer cannot see its way out of); raises
    BudgetTooSmall when `budget` is below the minimum."""
    plan = closer.plan(state.matcher, MINIMUM_SEARCH)
    if plan is None:
        return None
    if budget is not None and budget < len(plan):
        raise BudgetTooSmall(budget, len(plan))
    return len(plan)


def margin_for(closer: Closer, matcher: xgr.GrammarMatcher, dialect: Dialect) -> int:
    """The zone's margin for a grammar (`matcher` at its start, left as it is): the shortest call
    it allows (what opening a call adds to U) plus 8, and at least 16. Callers take it from
    `GrammarCache.margin`, which works it out once per grammar."""
    fork = matcher.fork()
    trigger = dialect.section_begin or dialect.trigger
    ids = closer._encode(trigger) if trigger else ()
    call = None
    if ids and all(fork.accept_token(t) for t in ids):
        plan = closer.plan(fork, 1 << 12)
        call = None if plan is None else len(plan) + len(ids)
    return max(16, (call or 0) + 8)
