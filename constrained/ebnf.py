"""EBNF fragments for xgrammar: literals, rule renaming, and argument grammars from JSON schemas.

Argument grammars come from xgrammar's own JSON-schema converter (the most faithful one we know),
printed as EBNF and renamed under a per-tool prefix, so that a whole request is ONE grammar in which
each tool's arguments are defined once and referenced from every call position. The `basic_*`
rules xgrammar emits are the same for every schema and are shared.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import NamedTuple

import xgrammar as xgr


class Fragment(NamedTuple):
    root: str  # the rule that matches the whole value
    rules: dict[str, str]  # rule name -> body


_RULE_HEAD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*) ::= ", re.M)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|[A-Za-z_][A-Za-z0-9_]*|.', re.S)


def literal(text: str) -> str:
    """An EBNF string literal for `text`."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def parse_rules(text: str) -> dict[str, str]:
    heads = list(_RULE_HEAD.finditer(text))
    return {
        m.group(1): text[m.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)].strip()
        for i, m in enumerate(heads)
    }


def rewrite(body: str, rename: dict[str, str], literal_map=None) -> str:
    """Rename rule references in a rule body; strings and character classes are left alone
    unless `literal_map` rewrites string literals."""
    out = []
    for tok in _TOKEN.findall(body):
        if tok[0] == '"' and literal_map is not None:
            out.append(literal_map(tok))
        elif tok in rename:
            out.append(rename[tok])
        else:
            out.append(tok)
    return "".join(out)


@lru_cache(maxsize=4096)
def _schema_ebnf(schema_json: str) -> str:
    return str(xgr.Grammar.from_json_schema(schema_json, any_whitespace=False, strict_mode=True))


def _import(ebnf_text: str, prefix: str, basic_prefix: str, transform=None, literal_map=None) -> Fragment:
    rules = parse_rules(ebnf_text)
    rename = {n: (basic_prefix + n[len("basic_") :] if n.startswith("basic_") else prefix + n) for n in rules}
    out = {}
    for name, body in rules.items():
        body = rewrite(body, rename, literal_map)
        out[rename[name]] = transform(body) if transform else body
    return Fragment(rename["root"], out)


def json_schema_rules(schema: dict, prefix: str) -> Fragment:
    return _import(_schema_ebnf(json.dumps(schema)), prefix, "json_")


# -- Python literals ---------------------------------------------------------------------------
# JSON text is a Python literal except for true/false/null and the `\/` escape, and a Python
# keyword argument may be followed by `)`, which xgrammar's string lookahead does not expect.
_PY_KEYWORDS = {"true": "True", "false": "False", "null": "None"}


def _decode_ebnf_literal(tok: str) -> str | None:
    try:
        return json.loads(tok)
    except ValueError:
        return None


def _python_literal_map(tok: str) -> str:
    from .codecs import python_literal

    text = _decode_ebnf_literal(tok)
    if text is None:
        return tok
    if text in _PY_KEYWORDS:
        return literal(_PY_KEYWORDS[text])
    if any(k in text for k in _PY_KEYWORDS):
        try:
            value = json.loads(text)
        except ValueError:
            return tok  # a fragment of JSON text; keywords inside strings stay as they are
        if not isinstance(value, str):
            return literal(python_literal(value))
    return tok


def _python_transform(body: str) -> str:
    return body.replace('[\\"\\\\/bfnrt]', '[\\"\\\\bfnrt]').replace("[,}\\]:]", "[,}\\]:)]")


def python_value_rules(schema: dict, prefix: str) -> Fragment:
    return _import(
        _schema_ebnf(json.dumps(schema)), prefix, "py_", _python_transform, _python_literal_map
    )


def python_kwargs_rules(schema: dict, prefix: str) -> Fragment:
    """`a=1, b="x"` for an object schema: properties in declared order, required ones mandatory.

    Declared properties only, whatever ``additionalProperties`` says: Python rejects a repeated
    keyword argument (``f(x=1, x=2)`` is a SyntaxError), and a grammar cannot keep an open set of
    extra names distinct, so extra keyword arguments could make a call that does not parse."""
    from .errors import ToolSpecError

    if schema.get("type") != "object" or any(k in schema for k in ("anyOf", "oneOf", "allOf")):
        raise ToolSpecError("the pythonic dialect needs an object schema with properties at the top level")
    props = list(schema.get("properties", {}).items())
    required = set(schema.get("required", []))
    defs = {k: schema[k] for k in ("$defs", "definitions") if k in schema}
    rules: dict[str, str] = {}
    pairs = []
    for i, (key, sub) in enumerate(props):
        if not key.isidentifier():
            raise ToolSpecError(f"property {key!r} is not a Python identifier, so it cannot be a keyword argument")
        value = python_value_rules({**sub, **defs} if isinstance(sub, dict) else sub, f"{prefix}p{i}_")
        rules.update(value.rules)
        pairs.append(f"{literal(key + '=')} {value.root}")
    # first_i: properties i.. with no leading comma; rest_i: properties i.. each after ", ".
    n = len(props)
    first, rest = f"{prefix}first_", f"{prefix}rest_"
    rules[f"{first}{n}"] = '""'
    rules[f"{rest}{n}"] = '""'
    for i in range(n - 1, -1, -1):
        key = props[i][0]
        rules[f"{rest}{i}"] = f'(", " {pairs[i]} {rest}{i + 1})' + ("" if key in required else f" | {rest}{i + 1}")
        rules[f"{first}{i}"] = f"({pairs[i]} {rest}{i + 1})" + ("" if key in required else f" | {first}{i + 1}")
    return Fragment(f"{first}0", rules)
