"""Fixes applied to the grammar text xgrammar prints for a normalised schema (`constrained.ebnf`
imports it through `rewrite_printed`): exact string lengths (`strings`), float constants and the
guarded extra keys of large open objects (`extra_keys`)."""

from __future__ import annotations

import json
import re

from .extra_keys import guarded_key_rules
from .strings import exact_string_lengths

# A bare number literal as xgrammar prints a float constant: 17 significant digits (%.17g).
_FLOAT_LITERAL = re.compile(r'"(-?(?:\d+\.\d+(?:e[+-]?\d+)?|\d+e[+-]?\d+))"')


def shortest_float_literals(ebnf: str) -> str:
    """xgrammar writes ``const: 1.12`` as ``"1.1200000000000001"`` (%.17g); JSON encoders (and
    models) write ``1.12``. Both denote the same double: accept the shortest form too."""

    def replace(m: re.Match) -> str:
        shortest = json.dumps(float(m.group(1)))
        return m.group(0) if shortest == m.group(1) else f'("{shortest}" | {m.group(0)})'

    return _FLOAT_LITERAL.sub(replace, ebnf)


def rewrite_printed(ebnf: str) -> str:
    """xgrammar's printed grammar for a normalised schema, with what it gets wrong rewritten."""
    return guarded_key_rules(shortest_float_literals(exact_string_lengths(ebnf)))
