"""User regular expressions (`pattern`, `patternProperties`) evaluated in linear time, with RE2.

A JSON Schema pattern is an ECMA-262 regex that is searched for. Python's `re` backtracks:
`^(a+)+$` against thirty `a` and a `b` runs for minutes while holding the GIL, which stalls every
other request. So every user pattern runs on RE2 (`google-re2`), whose matching time is linear in
the text, both where normalisation asks which declared names a pattern matches and in the
validation after decoding (jsonschema's keyword functions, given RE2 instead of `re`). A pattern
RE2 cannot run (look-around, back-references, a repetition count above 1000) is refused: the
request gets a 400 naming the keyword and path, never a slow path.

ECMA-262 escapes RE2 spells differently are translated: `\\uXXXX` and `\\u{X...}` become `\\x{...}`.
"""

from __future__ import annotations

import functools
import re
import types
from typing import Any

from ..errors import UnsupportedSchemaError

_UNICODE_ESCAPE = re.compile(r"u\{([0-9A-Fa-f]{1,6})\}|u([0-9A-Fa-f]{4})")  # after a backslash; linear (no nesting)


class RegexError(ValueError):
    """A pattern RE2 cannot run reached a search (`check_pattern` refuses it first)."""


def ecma_to_re2(pattern: str) -> str:
    """ECMA-262 escapes RE2 spells differently, rewritten (`\\u00e9` -> `\\x{00e9}`)."""
    if "\\u" not in pattern:
        return pattern
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            m = _UNICODE_ESCAPE.match(pattern, i + 1)
            if m:
                out.append("\\x{" + (m.group(1) or m.group(2)) + "}")
                i = m.end()
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=1)
def _options() -> Any:
    import re2  # lazily: `constrained --help` imports the schema package

    options = re2.Options()
    options.log_errors = False  # the reason goes into the error we raise, not to stderr
    return options


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> Any:
    """The RE2 program of an ECMA pattern, or the reason RE2 refuses it (a str)."""
    import re2

    try:
        return re2.compile(ecma_to_re2(pattern), _options())
    except re2.error as err:
        reason = err.args[0] if err.args else err
        return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def check_pattern(pattern: Any, keyword: str, path: str) -> None:
    """Raise UnsupportedSchemaError (naming `keyword` and `path`) unless RE2 can run `pattern`."""
    if not isinstance(pattern, str):
        raise UnsupportedSchemaError(keyword, path, f"a pattern must be a string, got {pattern!r}")
    program = _compiled(pattern)
    if isinstance(program, str):
        shown = pattern if len(pattern) <= 80 else pattern[:77] + "..."
        raise UnsupportedSchemaError(keyword, path, f"the regular expression {shown!r} cannot run in linear time ({program}); "
                                     "patterns may not use look-around, back-references or repetition counts above 1000")


def search(pattern: str, text: str) -> bool:
    """Does `pattern` (ECMA-262, checked by `check_pattern`) match somewhere in `text`?"""
    return _Module.search(pattern, text) is not None


class _Module:
    """The part of `re` that jsonschema's keyword functions call, on RE2."""

    error = RegexError

    @staticmethod
    def search(pattern: str, text: str) -> Any:
        program = _compiled(pattern)
        if isinstance(program, str):
            raise RegexError(f"{pattern!r}: {program}")
        return program.search(text)


@functools.lru_cache(maxsize=1)
def jsonschema_keywords() -> dict[str, Any]:
    """jsonschema's own functions for the keywords that run user patterns (`pattern`,
    `patternProperties`, and `additionalProperties` / `unevaluatedProperties`, which search the
    patternProperties keys), rebound so that the `re` they call is RE2. Same code, same messages."""
    from jsonschema import _keywords, _utils

    def rebind(fn: Any, namespace: dict) -> Any:
        return types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)

    utils: dict = {**vars(_utils), "re": _Module}
    for name, value in vars(_utils).items():
        if isinstance(value, types.FunctionType) and value.__module__ == _utils.__name__:
            utils[name] = rebind(value, utils)
    keywords: dict = {**vars(_keywords), "re": _Module}
    for name, value in vars(_keywords).items():
        if isinstance(value, types.FunctionType) and value.__module__ == _utils.__name__:
            keywords[name] = utils[name]  # the helpers they imported from _utils
    names = ("pattern", "patternProperties", "additionalProperties", "unevaluatedProperties")
    return {name: rebind(getattr(_keywords, name), keywords) for name in names}
