"""Extra keys of an open object kept apart from its declared names, checked at run time (`KeyGuard`).

An object with declared ``properties`` that also takes other keys (``additionalProperties`` true
or a schema) must not take a declared name as an *extra* key: ``{"type": 5}`` would escape the
schema of ``type``. xgrammar writes that exclusion as a trie of the names, one rule and one
precomputed set of token masks per trie node (~9 ms each on a 129k vocabulary, 2 cores): a
generated news-article schema with a dozen open types of 40-60 properties took 18-27 s to compile.
Above `KEY_TRIE_LIMIT` trie nodes, `constrained.schema.extra_keys` writes the extra key as one
*guarded* rule instead, any string content, whose name carries the excluded names:

    json_keyx_{hex} ::= ((CHAR)* "\"")     # hex: the names, as zlib-compressed JSON

and the extra key's colon compact (``"other":1``; a declared property keeps ``"name": 1``). The
rule compiles like one free string whatever the names. This guard follows the output beside
xgrammar (`constrained.lengths.Guard` is the mechanism, shared with the length guard). Inside such
a key it keeps the key's bytes; where the key closes on a declared name (compared *decoded*:
``"\u0074ype"`` is ``type``):

- the declared property may be what the output writes (xgrammar keeps both parses alive: its
  literal ``"name": `` and the extra key): it is, exactly when ``": "`` can follow, and then the
  guard requires ``": "``, which the extra-key parse (compact) cannot take;
- otherwise (a name already written, out of the declared order, or escaped) the token is refused.

The mask clears what accepting would refuse: after such a key, every token that does not go on
with ``": "``; inside a key, the few tokens that could close it on a declared name (a dictionary
lookup per name that the key so far begins; inside an escape or a split UTF-8 character, each
allowed token with a quote is decoded) are followed on a fork; before a key opens, so are the few
tokens that open and close a declared name at once.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, NamedTuple

import numpy as np
import xgrammar as xgr

from .lengths import (
    _QUOTE,
    CLEAN,
    TABLES_KEPT,
    Guard,
    TokenTable,
    _allowed_ids,
    _and_row,
    _bytes_since,
    _opening,
    _states,
    _Step,
    guarded_rules,
    scan,
)
from .schema.extra_keys import GUARDED_KEY_RULE, decode_names

_KEYX = re.compile(GUARDED_KEY_RULE + r"(?P<hex>[0-9a-f]+)(?P<loop>_\d+)?$")


def decoded(content: bytes) -> str | None:
    """JSON string content (escapes complete) as the string it denotes; None when it is cut inside a
    UTF-8 character or an escape."""
    try:
        return json.loads(b'"' + content + b'"')
    except ValueError:
        return None


class KeyRules:
    """The key-guarded rules of one compiled grammar: rule id -> the declared names its keys
    exclude (``parents``), and their loop rules (``loops``)."""

    def __init__(self, parents: dict[int, frozenset[str]], loops: set[int]):
        self.parents = parents
        self.loops = loops
        self.names = frozenset().union(*parents.values())
        self._risky: np.ndarray | None = None

    def risky(self, t: TokenTable) -> np.ndarray:
        """Tokens that hold a whole quoted declared name (they could open and close a key on it).
        One table per compiled grammar (its tokenizer's), as `LengthRules.risky`."""
        if self._risky is None:
            self._risky = np.array([tok for tok in t.quoted.tolist() if self._names_quoted_in(t.vocab[tok])], dtype=np.int64)
        return self._risky

    def _names_quoted_in(self, data: bytes) -> bool:
        for q in (i for i, b in enumerate(data) if b == _QUOTE):
            _, end, _ = scan(CLEAN, data[q + 1:])
            if end >= 0 and decoded(data[q + 1:q + 1 + end]) in self.names:
                return True
        return False


def key_rules(compiled: xgr.CompiledGrammar) -> KeyRules | None:
    """The key-guarded rules of ``compiled``, or None when it has none (no guard needed)."""
    return guarded_rules(compiled, GUARDED_KEY_RULE, _KEYX, lambda g: decode_names(g.group("hex")), KeyRules)


class _Key(NamedTuple):
    rule: int
    start: int  # offset of the key's first content byte in the output
    content: bytes  # the key's bytes so far
    names: frozenset[str]


@functools.lru_cache(maxsize=TABLES_KEPT)  # per token table, as many as `lengths.token_table` keeps
def closing_by_text(t: TokenTable) -> dict[str, np.ndarray]:
    """The tokens that close a string from a clean position, by the decoded text before their quote
    (only those whose text there decodes on its own)."""
    found: dict[str, list[int]] = {}
    for tok in np.flatnonzero(t.closes).tolist():
        data = t.vocab[tok]
        text = decoded(data[:scan(CLEAN, data)[1]])
        if text is not None:
            found.setdefault(text, []).append(tok)
    return {k: np.array(v, dtype=np.int64) for k, v in found.items()}


# After a key that spells a declared name, the declared property's form goes on with this; an extra
# key's is compact (`constrained.schema.extra_keys`), so requiring it ends the extra-key parse.
DECLARED_SEPARATOR = b": "
_PENDING = -1  # the rule of the candidate that stands for "the declared separator must follow"


class KeyGuard(Guard):
    """The key guard: extra keys of open objects never equal to a declared name (see above)."""

    rules: KeyRules
    split_from = 1  # every piece ends at a quote: a key is judged right where it closes

    def _advance(self, step: _Step, data: bytes, raw: Any = None) -> _Step | None:
        raw = raw or self.raw
        end = step.end + len(data)
        candidates = step.candidates
        if candidates and candidates[0].rule == _PENDING:
            seen = candidates[0].content + data
            if not (seen.startswith(DECLARED_SEPARATOR) or DECLARED_SEPARATOR.startswith(seen)):
                return None  # the extra-key parse of a declared name
            if len(seen) < len(DECLARED_SEPARATOR):
                return _Step(step, data, end, (candidates[0]._replace(content=seen),))
            candidates = ()  # the declared form it is: read the rest of ``data`` as usual
        states = _states(raw)
        if not states and not candidates:
            return _Step(step, data, end, ())
        parents = {r for r, _ in states if r in self.rules.parents}
        in_loop = any(r in self.rules.loops for r, _ in states)
        kept: list[_Key] = []
        on_name = False
        for c in candidates:
            content = c.content + data
            _, at, _ = scan(CLEAN, content)
            if at >= 0:
                on_name |= decoded(content[:at]) in c.names
            elif c.rule in parents or in_loop:
                kept.append(c._replace(content=content))
        if on_name:
            # a declared name: fine as the declared property, which is alive exactly when its
            # separator can follow (an extra key's cannot); then nothing else may follow
            if not raw.fork().accept_string(DECLARED_SEPARATOR):
                return None
            return _Step(step, data, end, (_Key(_PENDING, end, b"", frozenset()),))
        fresh = sorted(parents - {c.rule for c in kept})
        if not kept and not fresh and in_loop:
            # a key opened in ``data``, which ends inside an escape: see Guard._rules_after
            fresh = sorted(self._rules_after(raw, _bytes_since(step, data, _opening(data, end), end)))
        if fresh:
            start = kept[0].start if kept else _opening(data, end) if _QUOTE in data else end
            content = _bytes_since(step, data, start, end)
            kept += [_Key(rule, start, content, self.rules.parents[rule]) for rule in fresh]
        return _Step(step, data, end, tuple(kept))

    def restrict(self, bitmask: Any, index: int) -> None:
        words = bitmask[index].numpy() if hasattr(bitmask, "numpy") else bitmask[index]
        t, keys = self.table, self._step.candidates
        if keys and keys[0].rule == _PENDING:
            _and_row(words, separator_tokens(t, DECLARED_SEPARATOR[len(keys[0].content):]))
            return
        prefixes = [decoded(k.content) if scan(CLEAN, k.content)[2] == CLEAN else None for k in keys]
        if not keys:
            suspects = self.rules.risky(t)
        elif None not in prefixes:
            # the closing tokens whose text completes a declared name, looked up
            closing = closing_by_text(t)
            found = [closing[n[len(p):]] for k, p in zip(keys, prefixes) if p is not None
                     for n in k.names if n.startswith(p) and n[len(p):] in closing]
            suspects = np.concatenate([t.multi_quoted, *found])
        else:
            # inside an escape or a UTF-8 character: each allowed token with a quote is decoded
            allowed = _allowed_ids(words, len(t.vocab))
            quoted = allowed[np.isin(allowed, t.quoted)]
            suspects = np.array([tok for tok in quoted.tolist() if any(_closes_on_name(k, t.vocab[tok]) for k in keys)], dtype=np.int64)
        if len(suspects):
            # whether the declared property is alive decides: each suspect is followed on a fork
            bits = (words[suspects >> 5].astype(np.int64) >> (suspects & 31)) & 1
            self._check_each(words, np.unique(suspects[bits == 1]))


def _closes_on_name(key: _Key, data: bytes) -> bool:
    content = key.content + data
    _, at, _ = scan(CLEAN, content)
    return at >= 0 and decoded(content[:at]) in key.names


@functools.lru_cache(maxsize=256)  # per token table and text (a bool per token: 128 KB on a 128K vocabulary)
def separator_tokens(t: TokenTable, need: bytes) -> np.ndarray:
    """Tokens that begin with ``need`` or are a beginning of it (a bool per token)."""
    return np.array([bool(v) and (v.startswith(need) or need.startswith(v)) for v in t.vocab], dtype=bool)
