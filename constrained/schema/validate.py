"""After decoding: jsonschema (draft 2020-12, formats checked) on what the grammar produced, and
which unenforced keyword an error comes from."""

from __future__ import annotations

import copy
import datetime
import functools
import re
from typing import Any

from .build import Unenforced
from .canonical import _pointer_path, _resolve_pointer
from .normalize import NormalizedSchema
from .regex import RegexError, jsonschema_keywords


@functools.lru_cache(maxsize=4)
def _validator(draft: int = 2020) -> tuple[Any, Any]:
    """jsonschema's draft 2020-12 validator class (for the canonical form) and a format checker that
    also checks date-time and time (jsonschema needs an optional package for those). A pattern
    Python's ``re`` cannot read (ECMA-262 only syntax) cannot be checked: it passes instead of
    raising. For a document of draft 3/4, ``1.0`` is not an integer (its own type checker)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    types = jsonschema.Draft4Validator.TYPE_CHECKER if draft <= 4 else base.TYPE_CHECKER
    # user patterns on RE2 (regex.py); one RE2 cannot run passes here (normalisation refused it)
    keywords = jsonschema_keywords()
    cls = jsonschema.validators.extend(base, {
        key: _tolerant(keywords[key]) if key in ("pattern", "patternProperties") else keywords[key] for key in keywords}, type_checker=types)
    checker = copy.deepcopy(base.FORMAT_CHECKER)
    checker.checks("date-time")(lambda v: not isinstance(v, str) or _check_datetime(v))
    checker.checks("time")(lambda v: not isinstance(v, str) or _check_datetime("2000-01-01T" + v))
    return cls, checker


def _tolerant(check: Any) -> Any:
    def tolerant(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        try:
            errors = list(check(validator, value, instance, schema))
        except (re.error, RegexError):
            return
        yield from errors

    return tolerant


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _check_datetime(value: str) -> bool:
    if not _RFC3339.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return False
    return True


def _errors(instance: Any, normalized: NormalizedSchema) -> list:
    cls, checker = _validator(4 if normalized.draft <= 4 else 2020)
    return list(cls(normalized.validation, format_checker=checker).iter_errors(instance))


def validate(instance: Any, normalized: NormalizedSchema) -> list[str]:
    """jsonschema errors of ``instance`` (``"$.a.b: message"``); ``[]`` when valid."""
    try:
        return [f"{err.json_path}: {err.message}" for err in _errors(instance, normalized)]
    except Exception as exc:  # noqa: BLE001 - a schema jsonschema cannot evaluate: say so, never raise
        return [f"$: the schema cannot be checked: {type(exc).__name__}: {exc}"]


def unenforced_violations(instance: Any, normalized: NormalizedSchema) -> list[Unenforced]:
    """The unenforced keywords that ``instance`` violates (it may violate others too).

    An error counts against an unenforced keyword when it comes from that keyword or from inside
    the subschema it holds; failing that, from a keyword of the same name elsewhere (paths
    through ``$ref`` chains or merged ``allOf`` branches do not always map back)."""
    if not normalized.unenforced:
        return []
    found: list[Unenforced] = []
    try:
        stack = _errors(instance, normalized)
    except Exception:  # noqa: BLE001 - see validate()
        return []
    while stack:
        err = stack.pop()
        stack.extend(err.context or ())
        path = _schema_path(normalized, err.absolute_schema_path)
        match = [u for u in normalized.unenforced if any(
            path == p or path.startswith((p + ".", p + "[")) for p in _covered_paths(u))]
        match = match or [u for u in normalized.unenforced if u.keyword == err.validator][:1]
        found += [u for u in match if u not in found]
    return found


def _covered_paths(u: Unenforced) -> tuple[str, ...]:
    """Schema paths whose errors an unenforced keyword accounts for (``if`` covers then/else)."""
    if u.keyword == "if":
        base = u.path[: -len(".if")]
        return u.path, base + ".then", base + ".else"
    return (u.path,)


def _schema_path(normalized: NormalizedSchema, tokens: Any) -> str:
    """jsonschema's ``absolute_schema_path`` as our ``$.a.b`` path, following ``$ref``."""
    root = normalized.validation
    path, node = "$", root
    tokens = list(tokens)
    for i, token in enumerate(tokens):
        if token == "$ref" and isinstance(node, dict) and isinstance(node.get("$ref"), str) and i + 1 < len(tokens):
            ref = node["$ref"]  # a JSON pointer from the root (canonical form)
            path = normalized.ref_paths.get(ref) or _pointer_path(ref)
            node = _resolve_pointer(root, ref)
            continue
        try:
            node = node[token]
        except (KeyError, IndexError, TypeError):
            node = None
        path += f"[{token}]" if isinstance(token, int) else f".{token}"
    return path
