"""String lengths of any size, counted beside xgrammar at run time (`GuardedMatcher`).

xgrammar compiles a string length bound by unrolling it: one rule, and one precomputed set of token
masks, per character (~25 ms each on a 129k vocabulary), so `constrained.schema.strings` writes
bounds up to `LENGTH_CHAIN_LIMIT` as such a chain. A larger bound (`maxLength: 1000`) is written
as one *guarded* rule instead, whose name carries the bounds:

    json_strlen_g{lo}_{hi} ::= ((json_strlen_g{lo}_{hi}_1 "\\""))   # hi = n: no maximum
    json_strlen_g{lo}_{hi}_1 ::= "" | CHAR json_strlen_g{lo}_{hi}_1   # CHAR: one character or escape

It takes any string, so it compiles like one free string (a few ms, whatever the bound). The
counting is done here, by a wrapper of xgrammar's matcher with the same interface:

- After each token that may open or is inside a string, xgrammar's parser states
  (`_debug_print_internal_state`, the only place xgrammar 0.2.8 shows them) say which guarded
  rules the parse is inside. Each is a *candidate* (several where `anyOf` branches differ in
  bounds); the string's decoded characters are counted from its opening quote, exactly as
  `json.loads` reads them (an escape is one character, a surrogate-pair escape too).
- The mask: inside a guarded string, a token is allowed when some live candidate allows it: its
  characters fit under the maximum, and a token that closes the string brings the count to the
  minimum. Per-token character counts are precomputed per tokenizer (`TokenTable`), so this is a
  few vectorised comparisons; a token boundary inside an escape takes the exact slow path over the
  tokens xgrammar allows.
- Outside a string, the few tokens that could open a guarded string and already break its bounds
  in the same token (a quote followed by more characters than the smallest maximum, or an opening
  and a closing quote around fewer than the largest minimum) are checked one by one on a fork.
- Accepting checks too: a token that breaks a bound is refused, as xgrammar refuses a token.

The debug text is xgrammar's, "subject to change": the format is pinned by the tests
(`tests/test_lengths.py`); a grammar whose states cannot be read raises rather than guessing.
"""

from __future__ import annotations

import functools
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import xgrammar as xgr

from .lru import SizedLRU
from .schema.strings import GUARDED_LENGTH_RULE, LENGTH_CHAIN_LIMIT

_GUARDED = re.compile(GUARDED_LENGTH_RULE + r"(\d+)_(\d+|n)(?P<loop>_\d+)?$")
_RULE_LINE = re.compile(r"^(\w+) ::= ", re.M)
_STATE = re.compile(r"rule_id=(\d+), sequence_id=-?\d+, element_id=-?\d+, rule_start_pos=(-?\d+)")
_NO_MAX = 1 << 40
_QUOTE, _BACKSLASH = 0x22, 0x5C


# ----------------------------------------------------------------------------- counting characters


class ScanState(NamedTuple):
    """Where a scan of string content stands: ``phase`` 0 between characters, 1 after a backslash,
    2 inside ``\\uXXXX`` (``hex`` read so far); ``high``: the last character was a high-surrogate
    escape, so an escape next may be the second half of the same character; ``pending``: the
    escape being read is that possible second half, not counted yet."""

    phase: int = 0
    hex: str = ""
    high: bool = False
    pending: bool = False


CLEAN = ScanState()
AFTER_BACKSLASH = ScanState(1)
_ESCAPE_LETTERS = frozenset(b'"\\/bfnrtu')


def scan(state: ScanState, data: bytes) -> tuple[int, int, ScanState]:
    """Decoded characters of JSON string content ``data`` read from ``state``, up to an unescaped
    closing quote: (characters, index of that quote or -1, state after), as ``json.loads`` counts
    them. An escape counts at its backslash, so a token that only begins one already counts the
    character it commits to; UTF-8 continuation bytes count nothing."""
    phase, hexs, high, pending = state
    chars = 0
    for i, b in enumerate(data):
        if phase == 0:
            if b == _QUOTE:
                return chars, i, ScanState(0, "", high, False)
            if b == _BACKSLASH:
                phase = 1
                pending = high  # after a high surrogate: maybe its second half
                chars += not pending
            elif not 0x80 <= b < 0xC0:
                chars += 1
                high = False
        elif phase == 1:
            if b == 0x75:  # u
                phase, hexs = 2, ""
            else:
                phase, high = 0, False
                chars += pending
                pending = False
        else:
            hexs += chr(b)
            if len(hexs) == 4:
                phase = 0
                try:
                    value = int(hexs, 16)
                except ValueError:  # not an escape xgrammar lets through
                    value = 0
                if pending and 0xDC00 <= value <= 0xDFFF:
                    high = False  # the second half of a pair: the same character
                else:
                    chars += pending
                    high = 0xD800 <= value <= 0xDBFF
                pending = False
    return chars, -1, ScanState(phase, hexs, high, pending)


class TokenTable:
    """Per-token counts of one vocabulary, read from a clean state (between characters):
    ``chars`` before a closing quote (or in all), ``closes``, and for tokens with quotes what they
    could do to a string they open."""

    def __init__(self, vocab: Sequence[bytes]):
        self.vocab = [bytes(t) for t in vocab]
        n = len(self.vocab)
        self.chars = np.zeros(n, dtype=np.int64)
        self.closes = np.zeros(n, dtype=bool)
        # closes, then opens another string and writes more than a chain's bound or closes it too
        self.reopens = np.zeros(n, dtype=bool)
        self.open_chars = np.zeros(n, dtype=np.int64)  # most characters after an opening quote
        self.open_close = np.full(n, _NO_MAX, dtype=np.int64)  # fewest characters between two quotes
        for t, data in enumerate(self.vocab):
            if _QUOTE not in data and _BACKSLASH not in data:
                self.chars[t] = sum(1 for b in data if not 0x80 <= b < 0xC0)
                continue
            chars, at, _ = scan(CLEAN, data)
            self.chars[t] = chars
            self.closes[t] = at >= 0
            if at >= 0:
                self.reopens[t] = _reopen_risk(data[at + 1:])
            for q in (i for i, b in enumerate(data) if b == _QUOTE):
                inner, end, _ = scan(CLEAN, data[q + 1:])
                self.open_chars[t] = max(self.open_chars[t], inner)
                if end >= 0:
                    self.open_close[t] = min(self.open_close[t], inner)
        # the same read from just after a backslash (a token boundary inside an escape): only
        # tokens that start with an escape's letter can follow, the others get a count past any bound
        self.chars_escaped = np.full(n, _NO_MAX, dtype=np.int64)
        self.closes_escaped = np.zeros(n, dtype=bool)
        for t, data in enumerate(self.vocab):
            if data and data[0] in _ESCAPE_LETTERS:
                chars, at, _ = scan(AFTER_BACKSLASH, data)
                self.chars_escaped[t] = chars
                self.closes_escaped[t] = at >= 0
                if at >= 0 and _reopen_risk(data[at + 1:]):
                    self.chars_escaped[t] = _NO_MAX
        self.by_length = np.argsort(self.chars, kind="stable")  # token ids by their character count
        self.sorted_lengths = self.chars[self.by_length]
        self.closers = np.flatnonzero(self.closes)
        # what a string far from its bounds forbids: a closing token that opens a risky string
        words = (n + 31) // 32
        base = np.packbits(~(self.closes & self.reopens), bitorder="little")
        self.packed_base = np.concatenate([base, np.full(words * 4 - len(base), 0xFF, dtype=np.uint8)]).view(np.int32)
        self.quoted = np.array([t for t, data in enumerate(self.vocab) if _QUOTE in data], dtype=np.int64)
        self.quoted_set = frozenset(self.quoted.tolist())
        self.multi_quoted = np.array([t for t in self.quoted.tolist() if self.vocab[t].count(_QUOTE) >= 3], dtype=np.int64)


def _reopen_risk(rest: bytes) -> bool:
    """After a closing quote, does the token's rest open a string and write past a chain bound, or
    open and close one (whose minimum it might miss)?"""
    if _QUOTE not in rest:
        return False
    inner, end, _ = scan(CLEAN, rest[rest.index(_QUOTE) + 1:])
    return end >= 0 or inner > LENGTH_CHAIN_LIMIT


# the tables of the tokenizers used last (~10 MB each: a process that walks every dialect's
# tokenizer, as the test suite does, would keep ~45)
TABLES_KEPT = 8
_TABLES: SizedLRU[str, TokenTable] = SizedLRU(TABLES_KEPT, 2**62)
_TABLES_LOCK = threading.Lock()


def token_table(info: xgr.TokenizerInfo) -> TokenTable:
    """The table of a tokenizer, built once (~0.5 s on a 129k vocabulary). xgrammar hands out a new
    TokenizerInfo object per compiled grammar, so tables are found by the tokenizer's metadata
    (vocabulary type and size, stop tokens): tokenizers alike in all of these but with different
    token texts would share one, which no tokenizer of this project does."""
    key = f"{info.dump_metadata()}/{info.vocab_size}"
    with _TABLES_LOCK:
        table = _TABLES.get(key)
    if table is None:
        table = TokenTable(info.decoded_vocab)
        with _TABLES_LOCK:
            held = _TABLES.get(key)
            if held is None:
                _TABLES.put(key, table, 0)
            table = held if held is not None else table
    return table


# ----------------------------------------------------------------------------- the grammar's rules


class LengthRules:
    """The guarded rules of one compiled grammar: rule id -> (lo, hi), for the rules themselves
    (``parents``) and for their loop rules (``loops``)."""

    def __init__(self, parents: dict[int, tuple[int, int]], loops: set[int]):
        self.parents = parents
        self.loops = loops
        his = [hi for _, hi in parents.values()]
        self.min_max = min(his)
        self.max_min = max(lo for lo, _ in parents.values())
        self._risky: np.ndarray | None = None

    def risky(self, t: TokenTable) -> np.ndarray:
        """Tokens that could open one of these strings and break its bounds within themselves."""
        if self._risky is None:
            q = t.quoted
            self._risky = q[(t.open_chars[q] > self.min_max) | (t.open_close[q] < self.max_min)]
        return self._risky


# by compiled grammar, held weakly: the grammar cache decides how long a grammar lives
# (compiled grammars are not hashable: by id, with a weak reference that also drops the entry)
_RULES: dict[tuple[int, str], tuple[weakref.ref, Any]] = {}


def guarded_rules(compiled: xgr.CompiledGrammar, marker: str, pattern: re.Pattern, spec: Callable[[re.Match], Any],
                  make: Callable[[dict[int, Any], set[int]], Any]) -> Any:
    """``make(parents, loops)`` for the guarded rules of ``compiled`` whose names ``pattern``
    matches (its printed text must hold ``marker``), or None when it has none (no guard needed):
    rule id -> ``spec(match)`` for each rule, and the ids of their loop rules (where the pattern's
    ``loop`` group matched: xgrammar's rule for a ``*`` inside). Rule ids are the order in which
    the compiled grammar prints its rules. Worked out once per compiled grammar and marker."""
    key = (id(compiled), marker)
    with _TABLES_LOCK:
        hit = _RULES.get(key)
        if hit is not None and hit[0]() is compiled:
            return hit[1]
    text = str(compiled.grammar)
    rules = None
    if marker in text:
        parents: dict[int, Any] = {}
        loops: set[int] = set()
        for rule_id, m in enumerate(_RULE_LINE.finditer(text)):
            g = pattern.search(m.group(1))
            if g is None:
                continue
            if g.group("loop"):
                loops.add(rule_id)
            else:
                parents[rule_id] = spec(g)
        rules = make(parents, loops) if parents else None
    with _TABLES_LOCK:
        _RULES[key] = (weakref.ref(compiled, functools.partial(_forget, key)), rules)
    return rules


def _forget(key: tuple[int, str], _ref: Any) -> None:
    _RULES.pop(key, None)


def length_rules(compiled: xgr.CompiledGrammar) -> LengthRules | None:
    """The length-guarded rules of ``compiled``, or None when it has none (no guard needed)."""
    return guarded_rules(compiled, GUARDED_LENGTH_RULE, _GUARDED, lambda g: (int(g.group(1)), _NO_MAX if g.group(2) == "n" else int(g.group(2))),
                         LengthRules)


# ----------------------------------------------------------------------------- the guard


class _Candidate(NamedTuple):
    rule: int
    start: int  # offset of the string's first content byte in the output
    lo: int
    hi: int
    chars: int  # decoded so far
    state: ScanState


class _Step(NamedTuple):
    """The guard after one accepted piece (a linked list, so forks share their history)."""

    previous: _Step | None
    data: bytes
    end: int  # bytes accepted in all
    candidates: tuple[Any, ...]  # each guard's own kind (the length guard: _Candidate)


def _states(raw: xgr.GrammarMatcher) -> list[tuple[int, int]]:
    text = raw._debug_print_internal_state()
    last = text.rfind("Last step")
    found = [(int(a), int(b)) for a, b in _STATE.findall(text, last if last >= 0 else 0)]
    if not found and not (raw.is_completed() or raw.is_terminated()):
        raise RuntimeError("constrained.lengths: cannot read xgrammar's parser states (a new xgrammar?)")
    return found


class Guard:
    """xgrammar's `GrammarMatcher` (or another guard) plus a check that xgrammar's grammar cannot
    afford to spell out, counted beside it at run time: the same methods, so decoders, the
    budget's closer and vLLM use it unchanged. A subclass says what it tracks inside its guarded
    rules (`_advance`) and what it clears from a mask (`restrict`); this class follows the output.
    Guards stack: `guarded` wraps the key guard (`constrained.keys`) in the length guard."""

    # a token with this many quotes is followed piece by piece, each piece ending at a quote
    split_from = 2

    def __init__(self, raw: Any, rules: Any, table: TokenTable, step: _Step | None = None):
        self.raw = raw
        self.rules = rules
        self.table = table
        self._step = step or _Step(None, b"", 0, ())

    # -- xgrammar's interface

    def accept_token(self, token_id: int, *, debug_print: bool = False) -> bool:
        token_id = int(token_id)
        data = self.table.vocab[token_id] if token_id < len(self.table.vocab) else b""
        now = self._step
        if not now.candidates and token_id not in self.table.quoted_set:
            # no string of ours is open and this token opens none: nothing to count
            if not self.raw.accept_token(token_id):
                return False
            self._step = _Step(now, data, now.end + len(data), ())
            return True
        # the guard decides on a fork first: xgrammar may keep no rollback history (vLLM)
        step = self._after(token_id)
        if step is None or not self.raw.accept_token(token_id):
            return False
        self._step = step
        return True

    def accept_string(self, input_str: str | bytes, *, debug_print: bool = False) -> bool:
        """Accept text (one step for rollback): fed piece by piece, each ending at a quote, so a
        string opened and closed inside it is checked too. On refusal nothing changes."""
        data = input_str.encode() if isinstance(input_str, str) else bytes(input_str)
        step = self._through(data, self.raw.fork())
        if step is None or not self.raw.accept_string(data):
            return False
        self._step = step
        return True

    def rollback(self, num_tokens: int) -> None:
        self.raw.rollback(num_tokens)
        for _ in range(num_tokens):
            if self._step.previous is not None:
                self._step = self._step.previous

    def reset(self) -> None:
        self.raw.reset()
        self._step = _Step(None, b"", 0, ())

    def fork(self) -> Guard:
        return type(self)(self.raw.fork(), self.rules, self.table, self._step)

    def fill_next_token_bitmask(self, bitmask: Any, index: int = 0, *, debug_print: bool = False) -> bool:
        need = self.raw.fill_next_token_bitmask(bitmask, index)
        self.restrict(bitmask, index)
        return need

    def is_terminated(self) -> bool:
        return self.raw.is_terminated()

    def is_completed(self) -> bool:
        return self.raw.is_completed()

    def find_jump_forward_string(self) -> str:
        return self.raw.find_jump_forward_string() if not self._step.candidates else ""

    @property
    def stop_token_ids(self) -> list[int]:
        return self.raw.stop_token_ids

    @property
    def max_rollback_tokens(self) -> int:
        return self.raw.max_rollback_tokens

    def _debug_print_internal_state(self) -> str:
        return self.raw._debug_print_internal_state()

    # -- what a subclass checks

    def _advance(self, step: _Step, data: bytes, raw: Any = None) -> _Step | None:
        """The guard after ``data`` (already accepted by ``raw``), or None when it breaks the check."""
        raise NotImplementedError

    def restrict(self, bitmask: Any, index: int) -> None:
        """Clear, in row ``index`` of the packed bitmask just filled, the tokens the check refuses."""
        raise NotImplementedError

    # -- following the output

    def _rules_after(self, raw: Any, content: bytes) -> set[int]:
        """The guarded rules xgrammar shows once the escape that ``content`` ends inside is
        completed (on a fork of ``raw``)."""
        _, _, state = scan(CLEAN, content)
        rest = b"n" if state.phase == 1 else b"0" * (4 - len(state.hex))
        if state.phase == 2 and 0xD800 <= int(state.hex.ljust(4, "0") or "0", 16) <= 0xDBFF:
            rest += b"\\udc00"  # a high surrogate: the grammar wants its second half
        fork = raw.fork()
        if not fork.accept_string(rest):
            return set()
        return {r for r, _ in _states(fork) if r in self.rules.parents}

    def _check_each(self, words: np.ndarray, tokens: np.ndarray) -> None:
        """The exact check, token by token on a fork: clear the bits of those the guard refuses."""
        bits = words.view(np.uint32)
        for token in tokens.tolist():
            if self._after(int(token)) is None:
                bits[token >> 5] &= np.uint32(~(1 << (token & 31)) & 0xFFFFFFFF)

    def _after(self, token: int) -> _Step | None:
        """The guard after ``token`` (worked out on a fork), or None when it or xgrammar refuses it.
        A token with several quotes is followed quote by quote: a string it opens and closes is
        counted too."""
        data = self.table.vocab[token] if token < len(self.table.vocab) else b""
        fork = self.raw.fork()
        if data.count(_QUOTE) < self.split_from:
            return self._advance(self._step, data, fork) if fork.accept_token(token) else None
        return self._through(data, fork)

    def _through(self, data: bytes, fork: Any) -> _Step | None:
        """``fork`` fed ``data`` piece by piece (each ending at a quote), the guard advanced after
        each; the resulting step (one, for rollback), or None at the first refusal."""
        step: _Step | None = self._step
        for piece in _pieces(data):
            if step is None or not fork.accept_string(piece):
                return None
            step = self._advance(step, piece, fork)
        return None if step is None else _Step(self._step, data, step.end, step.candidates)


class GuardedMatcher(Guard):
    """The length guard: string lengths counted inside the grammar's `strlen_g` rules."""

    rules: LengthRules

    # -- the guard

    def inside(self) -> tuple[tuple[int, int, int], ...]:
        """The live guarded strings the output is in: (characters so far, lo, hi)."""
        return tuple((c.chars, c.lo, c.hi) for c in self._step.candidates)

    def _advance(self, step: _Step, data: bytes, raw: xgr.GrammarMatcher | None = None) -> _Step | None:
        """The guard after ``data`` (already accepted by ``raw``), or None when it breaks a bound."""
        raw = raw or self.raw
        end = step.end + len(data)
        states = _states(raw)
        if not states and not step.candidates:  # the output is complete
            return _Step(step, data, end, ())
        parents = {r for r, _ in states if r in self.rules.parents}
        in_loop = any(r in self.rules.loops for r, _ in states)
        kept: list[_Candidate] = []
        closed: list[bool] = []
        for c in step.candidates:
            chars, at, state = scan(c.state, data)
            if at >= 0:
                closed.append(c.lo <= c.chars + chars <= c.hi)
            elif c.chars + chars <= c.hi and (c.rule in parents or in_loop):
                kept.append(c._replace(chars=c.chars + chars, state=state))
        if closed and not any(closed):
            return None  # closed short of every live minimum (or past every maximum)
        if step.candidates and not closed and not kept:
            return None  # every live string passed its maximum
        fresh = sorted(parents - {c.rule for c in kept})
        if not kept and not fresh and in_loop:
            # a string opened in ``data``, which ends inside an escape: xgrammar shows the rule
            # once the escape is complete, so look on a fork where it is
            fresh = sorted(self._rules_after(raw, _bytes_since(step, data, _opening(data, end), end)))
        if fresh:
            # a string opened: its content starts after the opening quote (xgrammar's own
            # rule_start_pos is not that where a rule is entered in tail position)
            start = kept[0].start if kept else _opening(data, end) if _QUOTE in data else end
            chars, at, state = scan(CLEAN, _bytes_since(step, data, start, end))
            for rule in fresh:
                lo, hi = self.rules.parents[rule]
                if at < 0 and chars <= hi:
                    kept.append(_Candidate(rule, start, lo, hi, chars, state))
            if not kept:
                return None  # opened and already past every maximum
        return _Step(step, data, end, tuple(kept))

    def restrict(self, bitmask: Any, index: int) -> None:
        """Clear, in row ``index`` of the packed bitmask xgrammar just filled, the tokens that would
        break a length bound."""
        words = bitmask[index].numpy() if hasattr(bitmask, "numpy") else bitmask[index]
        step, t = self._step, self.table
        bounds = [(c.chars, c.state, c.lo, c.hi) for c in step.candidates]
        if not bounds:
            risky = self.rules.risky(t)
            if len(risky):
                bits = (words[risky >> 5].astype(np.int64) >> (risky & 31)) & 1
                self._check_each(words, risky[bits == 1])
            return
        if all(state == CLEAN for _, state, _, _ in bounds):
            room = max(hi - count for count, _, _, hi in bounds)
            need = min(lo - count for count, _, lo, _ in bounds)
            too_long = t.by_length[np.searchsorted(t.sorted_lengths, room, side="right"):]
            if len(bounds) == 1 and len(too_long) < len(t.vocab) // 8:
                # one string, not at its last few characters: clear the few tokens longer than
                # what is left, and the closing tokens that would end it short
                n = min(len(words), len(t.packed_base))
                words[:n] &= t.packed_base[:n]
                closers = t.closers
                short = closers[(t.chars[closers] < need) | (t.chars[closers] > room)] if need > 0 else closers[t.chars[closers] > room]
                _clear(words, np.concatenate([too_long, short]))
                return
            ok = np.zeros(len(t.vocab), dtype=bool)
            for count, _, lo, hi in bounds:
                ok |= (t.chars <= hi - count) & (~t.closes | (t.chars >= lo - count))
            _and_row(words, ok & ~(t.closes & t.reopens))
            return
        if all(state == AFTER_BACKSLASH for _, state, _, _ in bounds):
            ok = np.zeros(len(t.vocab), dtype=bool)
            for count, _, lo, hi in bounds:
                ok |= (t.chars_escaped <= hi - count) & (~t.closes_escaped | (t.chars_escaped >= lo - count))
            _and_row(words, ok)
            return
        # inside \\uXXXX or after a high surrogate: count each allowed token from there (few are)
        bits = words.view(np.uint32)
        for token in _allowed_ids(words, len(t.vocab)).tolist():
            if not any(_fits(t.vocab[token], count, state, lo, hi) for count, state, lo, hi in bounds):
                bits[token >> 5] &= np.uint32(~(1 << (token & 31)) & 0xFFFFFFFF)



def _fits(data: bytes, count: int, state: ScanState, lo: int, hi: int) -> bool:
    """Whether a token read from ``state`` keeps a string of ``count`` characters within bounds."""
    chars, at, _ = scan(state, data)
    if at < 0:
        return count + chars <= hi
    return lo <= count + chars <= hi and not _reopen_risk(data[at + 1:])


def _opening(data: bytes, end: int) -> int:
    """Absolute offset just after the quote in ``data`` (which ends at ``end``) that opened the
    string the output is now inside: the first quote after which the rest reads as open content."""
    for q in (i for i, b in enumerate(data) if b == _QUOTE):
        if scan(CLEAN, data[q + 1:])[1] < 0:
            return end - len(data) + q + 1
    return end


def _pieces(data: bytes) -> list[bytes]:
    """``data`` cut after each quote."""
    out, start = [], 0
    for i, b in enumerate(data):
        if b == _QUOTE:
            out.append(data[start:i + 1])
            start = i + 1
    if start < len(data):
        out.append(data[start:])
    return out


def _bytes_since(step: _Step, data: bytes, start: int, end: int) -> bytes:
    """The accepted bytes from absolute offset ``start`` to ``end`` (``data`` ends there)."""
    parts = [data]
    have = end - len(data)
    while have > start and step is not None and step.previous is not None:
        parts.append(step.data)
        have -= len(step.data)
        step = step.previous
    joined = b"".join(reversed(parts))
    return joined[max(0, start - have):]


def _clear(words: np.ndarray, tokens: np.ndarray) -> None:
    """Clear these tokens' bits in a packed row."""
    tokens = tokens[tokens < len(words) * 32]
    np.bitwise_and.at(words.view(np.uint32), tokens >> 5, ~(np.uint32(1) << (tokens & 31).astype(np.uint32)))


def _allowed_ids(words: np.ndarray, vocab: int) -> np.ndarray:
    bits = np.unpackbits(np.ascontiguousarray(words).view(np.uint8), bitorder="little")[:vocab]
    return np.flatnonzero(bits)


def _and_row(words: np.ndarray, ok: np.ndarray) -> None:
    packed = np.packbits(ok, bitorder="little")
    need = words.shape[0] * 4
    if packed.shape[0] < need:
        packed = np.concatenate([packed, np.full(need - packed.shape[0], 0xFF, dtype=np.uint8)])
    words &= packed[:need].view(np.int32)
