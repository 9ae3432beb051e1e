"""EBNF fragments for xgrammar: literals, rule renaming, and value grammars from JSON schemas.

Argument grammars come from xgrammar's own JSON-schema converter (the most faithful one we know),
printed as EBNF and renamed under a per-tool prefix, so that a whole request is ONE grammar in which
each tool's arguments are defined once and referenced from every call position. The `basic_*`
rules xgrammar emits are the same for every schema and are shared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import NamedTuple

from .lru import sized_lru_cache


class Fragment(NamedTuple):
    root: str  # the rule that matches the whole value
    rules: dict[str, str]  # rule name -> body


# a rule's head, from the newline before it: a pattern that starts with a literal is searched for,
# where `^` under re.M is tried at every position (3x slower on a megabyte of grammar)
_RULE_HEAD = re.compile(r"\n([A-Za-z_][A-Za-z0-9_]*) ::= ")
# a rule body's tokens: string literals, character classes, names, and runs of anything else (a run
# rather than each character: a large schema's grammar has ~40 % fewer tokens to make and join)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|[A-Za-z_][A-Za-z0-9_]*|[^"\[A-Za-z_]+|.', re.S)


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


def class_escape(cp: int) -> str:
    """One code point as it is written inside an EBNF character class."""
    c = chr(cp)
    if c in '\\]^-["':
        return "\\" + c
    if 0x20 <= cp < 0x7F:
        return c
    return f"\\x{cp:02x}" if cp < 0x80 else (f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")


def char_class(chars: str, negated: bool = True) -> str:
    """An EBNF character class of exactly these characters (or, negated, of all others)."""
    return "[" + ("^" if negated else "") + "".join(class_escape(ord(c)) for c in sorted(set(chars))) + "]"


def parse_rules(text: str) -> dict[str, str]:
    """Rule name -> body of a grammar's text (a body runs to the next rule's head)."""
    parts = _RULE_HEAD.split("\n" + text)  # [before the first rule, name, body, name, body, ...]
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def merge_equal_rules(rules: dict[str, str], keep: Callable[[str], bool], min_share: float = 0.0) -> dict[str, str]:
    """`rules` with each set of rules of equal bodies merged into the first (references renamed),
    until no two bodies are equal: rules may become equal only once the rules they refer to were
    merged. A large schema's grammar repeats many ("a string or null" for each nullable string
    property, the same nested object under several names), and xgrammar computes masks for each
    rule's positions (the generated `configs_0`: 5,935 -> 3,547 rules, its compile ~1/3 shorter).
    Rules `keep` names are never merged (root; rules whose name carries a run-time guard).
    `rules` come back as they are where fewer than `min_share` of them are equal to another at
    first (the renaming would cost more than xgrammar saves)."""
    holder: dict[str, str] = {}  # body -> the one rule that has it
    merged: dict[str, str] = {}  # rule -> the rule it is merged into
    for name, body in rules.items():
        if not keep(name):
            first = holder.setdefault(body, name)
            if first != name:
                merged[name] = first
    if not merged or len(merged) < min_share * len(rules):
        return rules
    order = {name: i for i, name in enumerate(rules)}
    bodies = dict(rules)
    users: dict[str, set[str]] = {}  # rule -> the rules whose bodies may refer to it
    for name, body in rules.items():
        # names inside literals too (a superset: such a body is rewritten unchanged), found by a
        # regex ~3x faster than taking every body apart into tokens
        for t in rules.keys() & set(_IDENTIFIER.findall(body)):
            users.setdefault(t, set()).add(name)
    while merged:
        changed: set[str] = set()
        for old, new in merged.items():
            del bodies[old]
            refs = users.pop(old, set())
            users.setdefault(new, set()).update(refs)
            changed |= refs
        live = sorted(changed & bodies.keys(), key=order.__getitem__)  # sorted: the same text every run
        for name in live:
            toks = _TOKEN.findall(bodies[name])  # a literal or class never equals a name
            before, bodies[name] = bodies[name], "".join(map(merged.get, toks, toks))
            if holder.get(before) == name:
                del holder[before]
        again: dict[str, str] = {}
        for name in live:  # once every changed body is new: equal to a body as it is now
            if not keep(name):
                first = holder.setdefault(bodies[name], name)
                if first != name:
                    again[name] = first
        merged = again
    return bodies


# Character classes xgrammar writes that let raw control characters into a JSON string (its
# length-bounded strings: `{"type": "string", "minLength": 2}`): JSON forbids them, and our marker
# tokens are spelled with one (tokenizer.MARKER_BYTE), so a marker would become string content.
_CLASS_FIXES = {r'[^\"\\\r\n]': r'[^\0-\x1f\"\\]'}

# Bounded runaway values: a number's digit runs are capped, so that a weak model cannot write
# digits until its budget ends. The caps hold every value JSON tools write: 40 integer digits
# hold every 128-bit integer (schemas with bounds beyond int64 compile, the bound checked after
# decoding); 20 fraction digits hold every double as Python's json writes it (17 significant
# digits after up to 3 zeros: 0.00012345678901234567); exponents get 3 (a double's range).
MAX_INT_DIGITS, MAX_FRACTION_DIGITS, MAX_EXPONENT_DIGITS = 40, 20, 3


_UNBOUNDED_REPEAT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\{([01]), -1\}")


def bound_digits(name: str, body: str, digit_rules: set[str]) -> str:
    """`body` with xgrammar's unbounded digit repetitions capped (see MAX_*_DIGITS)."""
    body = body.replace("[0-9]*", f"[0-9]{{0, {MAX_INT_DIGITS - 1}}}")
    if ", -1}" not in body:
        return body
    cap = MAX_EXPONENT_DIGITS if "[eE]" in body else (MAX_FRACTION_DIGITS if '"."' in body else MAX_INT_DIGITS - 1)
    return _UNBOUNDED_REPEAT.sub(lambda m: f"{m[1]}{{{m[2]}, {cap}}}" if m[1] in digit_rules else m[0], body)


def rewrite(body: str, table: dict[str, str], literal_map=None) -> str:
    """A rule body with each token looked up in `table` (`replacements`: rule references renamed,
    character classes that would admit control characters into a string fixed); string literals
    are left alone unless `literal_map` rewrites them."""
    tokens = _TOKEN.findall(body)
    if literal_map is None:  # one C-level pass (on a megabyte of grammar ~40 % faster than a loop)
        return "".join(map(table.get, tokens, tokens))
    return "".join(literal_map(t) if t[0] == '"' else table.get(t, t) for t in tokens)


def replacements(rename: dict[str, str]) -> dict[str, str]:
    """`rename` and the class fixes as one table for `rewrite`."""
    return {**_CLASS_FIXES, **rename}


# the same schema in another tool set reuses its text; bounded by bytes too, since a large schema's
# text is ~1 MB (4,096 of those would be 4 GB)
@sized_lru_cache(max_entries=4096, max_bytes=64 * 1024 * 1024, size=lambda schema, text: len(schema) + len(text))
def _schema_ebnf(schema_json: str) -> str:
    import xgrammar as xgr  # here: importing xgrammar costs seconds, and the CLI's help needs none of it

    from .schema.extra_keys import mark_extra_keys
    from .schema.hoist import hoist_nested_objects
    from .schema.printed import rewrite_printed

    # open objects with many declared names: their extra keys guarded (constrained.schema.extra_keys);
    # deep objects hoisted into $defs, so that xgrammar names their rules short (constrained.schema.hoist)
    schema = json.loads(schema_json)
    marked = hoist_nested_objects(mark_extra_keys(schema))
    if marked is not schema:
        schema_json = json.dumps(marked)
    # exact string lengths (xgrammar's exclude escapes), float constants and guarded keys:
    # constrained.schema.printed
    return rewrite_printed(str(xgr.Grammar.from_json_schema(schema_json, any_whitespace=False, strict_mode=True)))


def _import(ebnf_text: str, prefix: str, basic_prefix: str, transform=None, literal_map=None) -> Fragment:
    """xgrammar's rules renamed under `prefix` (its shared `basic_*` rules under `basic_prefix`),
    each body optionally rewritten (`transform`, and `literal_map` on string literals)."""
    rules = parse_rules(ebnf_text)
    rename = {n: (basic_prefix + n[len("basic_") :] if n.startswith("basic_") else prefix + n) for n in rules}
    digit_rules = {rename[n] for n, body in rules.items() if body == "(([0-9]))"}
    table = replacements(rename)
    out = {}
    for name, body in rules.items():
        body = bound_digits(rename[name], rewrite(body, table, literal_map), digit_rules)
        out[rename[name]] = transform(body) if transform else body
    return Fragment(rename["root"], out)


def json_schema_rules(schema: dict, prefix: str, *, basic_prefix: str = "json_", transform=None, literal_map=None) -> Fragment:
    """The rules xgrammar's JSON-schema converter writes for `schema`, under `prefix`. A codec for
    another encoding of the same values passes `transform` / `literal_map` (and its own
    `basic_prefix`, so that its shared rules do not clash with JSON's)."""
    return _import(_schema_ebnf(json.dumps(schema)), prefix, basic_prefix, transform, literal_map)
