"""The run-time guards of a compiled grammar, stacked on xgrammar's matcher where the grammar has
guarded rules: extra keys apart from declared names (`constrained.keys`), then string lengths
(`constrained.lengths`). Each has xgrammar's matcher interface, so a caller takes `matcher(...)`
and uses it as it would use xgrammar's."""

from __future__ import annotations

from typing import Any

import xgrammar as xgr

from .keys import KeyGuard, key_rules
from .lazy import LazyGrammar, LazyMatcher
from .lengths import Guard, GuardedMatcher, length_rules, token_table


def guarded(raw: xgr.GrammarMatcher, compiled: xgr.CompiledGrammar) -> Any:
    """``raw`` itself, or wrapped in the guards ``compiled`` needs."""
    out: Any = raw
    keys = key_rules(compiled)
    if keys is not None:
        out = KeyGuard(out, keys, token_table(compiled.tokenizer_info))
    lengths = length_rules(compiled)
    if lengths is not None:
        out = GuardedMatcher(out, lengths, token_table(compiled.tokenizer_info))
    return out


def matcher(compiled: Any, **kwargs: Any) -> Any:
    """A matcher for ``compiled`` (xgrammar's arguments), guarded where it needs to be; for a
    grammar llguidance serves (`constrained.lazy`), its matcher (the translation writes the
    guarded rules as exact regexes: no guard)."""
    if isinstance(compiled, LazyGrammar):
        return LazyMatcher(compiled, **kwargs)
    return guarded(xgr.GrammarMatcher(compiled, **kwargs), compiled)


def xgrammar_matcher(m: Any) -> xgr.GrammarMatcher:
    """xgrammar's own matcher under any guards (for its batched mask fill)."""
    while isinstance(m, Guard):
        m = m.raw
    return m


def restrict(m: Any, bitmask: Any, row: int) -> None:
    """What the guards add to a row xgrammar filled: the innermost guard first, as a guarded fill
    would do it."""
    stack = []
    while isinstance(m, Guard):
        stack.append(m)
        m = m.raw
    for guard in reversed(stack):
        guard.restrict(bitmask, row)
