"""JSON Schema patterns (ECMA-262 searches) rewritten into the full-match regexes xgrammar expects."""

from __future__ import annotations

import functools
import re

_UNSUPPORTED_REGEX = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[bBAZzpPk]|\\[1-9]|\{,")


@functools.lru_cache(maxsize=4096)
def _fullmatch_pattern(pattern: str) -> str | None:
    """Rewrite a JSON Schema (search) pattern as the full-match regex xgrammar expects.

    ``None`` when xgrammar cannot compile the pattern or would only approximate it.
    """
    if not isinstance(pattern, str) or _UNSUPPORTED_REGEX.search(pattern):
        return None
    alternatives = []
    for alt in _scan(pattern)[0]:
        body = alt[1:] if alt.startswith("^") else ".*" + alt
        body = body[:-1] if _ends_with_anchor(body) else body + ".*"
        if _scan(body)[1]:
            return None  # xgrammar ignores anchors inside a regex: it would accept more
        alternatives.append(body)
    full = alternatives[0] if len(alternatives) == 1 else "|".join(f"(?:{a})" for a in alternatives)
    import xgrammar  # lazily: seconds to import

    try:
        xgrammar.Grammar.from_regex(full)
    except Exception:  # noqa: BLE001 - any parse failure means: check after decoding
        return None
    return full


def _scan(pattern: str) -> tuple[list[str], bool]:
    """Top-level ``|`` alternatives of ``pattern``, and whether it holds an anchor (``^``, ``$``)
    outside character classes."""
    parts, depth, in_class, start, i, anchored = [], 0, False, 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            i += 1
            i += pattern[i : i + 1] == "^"
            i += pattern[i : i + 1] == "]"  # a leading ``]`` is a literal
            continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c in "^$":
            anchored = True
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts, anchored


def _ends_with_anchor(p: str) -> bool:
    if not p.endswith("$"):
        return False
    backslashes = len(p[:-1]) - len(p[:-1].rstrip("\\"))
    return backslashes % 2 == 0
