"""XML parameters: one element per argument, the families that write tool arguments as tags.

    <parameter=city>\\nParis\\n</parameter>\\n                  Qwen3-Coder / Qwen3.5, Step-3.5
    <parameter=city>Paris</parameter>                          Seed-OSS, MiMo
    <parameter name="city">Paris</parameter>                   MiniMax-M2
    <arg_key>city</arg_key><arg_value>Paris</arg_value>        GLM-4.5 / 4.7, Ling 3
    <｜DSML｜parameter name="city" string="true">Paris</…>      DeepSeek V3.2 / V4 (DSML)

A dialect gives the codec its parameter template (`{key}`, `{value}`, and for DSML `{string}`,
"true" when the value is a raw string and "false" when it is JSON) as an instance:
`Dialect(arguments=XmlArguments("<parameter={key}>\\n{value}\\n</parameter>\\n"))`.

Values:
- A string is written raw, as it is: none of these formats has an escape. So a string cannot
  contain the tag that closes a value (`</parameter>`) or the one that opens the next: the grammar
  excludes both, and the renderer refuses such a string. Whitespace that the template puts around
  a value (Qwen's newlines) is framing: the parser removes exactly that much.
- Every other value is JSON on one line with `<` written `\\u003c`, so no value can spell a tag.
- Values are read BY THE SCHEMA, with vLLM's rule (`coerce_to_schema_type`): the first of
  null > integer > number > boolean > object > array > string that the parameter's schema admits
  and the text reads as. A parameter without a schema (no tools given, an undeclared key) is a
  string. DSML says it per value: `string="true"` is raw text, `string="false"` JSON.
- Where a schema admits strings AND other types (`["string", "null"]`, `{}`), the grammar keeps a
  raw string from reading as another admitted type: not `null` in any case where null is admitted,
  and not starting with a character that could begin a number, a boolean or a JSON value where
  those are admitted (whitespace, digits, signs, `t`/`f`/`0`/`1`, `{`, `[`, `"`).
- Top-level arguments are the schema's declared properties, in declared order (as for Python
  keyword arguments: a grammar cannot keep an open set of extra names distinct).
"""

from __future__ import annotations

import hashlib
import json
import math
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import ebnf as E
from ..errors import ToolSpecError, UnsupportedSchemaError
from ..schema.strings import LENGTH_CHAIN_LIMIT
from . import WHITESPACE, ArgumentCodec, jinja_raw, register_codec, skip_ws

# vLLM's priority (tool_parsers/utils.py::coerce_to_schema_type); "string" is the fallback.
TYPES = ("null", "integer", "number", "boolean", "object", "array", "string")
ANY_TYPE = frozenset(TYPES)
# What int(), float() and str.strip() skip: a raw string starting with one could read as a number.
SPACES = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
_JSON_START = SPACES + '{["-0123456789tfn'
# Characters that may begin a text vLLM reads as this type (int(), float(), its boolean words,
# json.loads): a raw string in a union with that type must not begin with one.
STARTS = {
    "integer": SPACES + "+-0123456789",
    "number": SPACES + "+-.0123456789",
    "boolean": SPACES + "tTfF01",
    "object": _JSON_START,
    "array": _JSON_START,
}
_CONSTRAINED_STRING = ("enum", "const", "pattern", "format", "minLength", "maxLength")


class _Incomplete(Exception):
    pass


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _definitions(schema: dict | None) -> dict:
    if not isinstance(schema, dict):
        return {}
    return {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}


def _resolve(schema: Any, defs: dict) -> dict:
    seen: set[str] = set()
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and schema["$ref"] not in seen:
        seen.add(schema["$ref"])
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema if isinstance(schema, dict) and "$ref" not in schema else {}


def schema_types(schema: Any, defs: dict, depth: int = 0) -> frozenset[str]:
    """The JSON types a (normalised) schema admits; no type information: all of them."""
    s = _resolve(schema, defs)
    if "const" in s:
        return frozenset({json_type(s["const"])})
    if isinstance(s.get("enum"), list):
        return frozenset(json_type(v) for v in s["enum"])
    t = s.get("type")
    if isinstance(t, str):
        return frozenset({t}) & ANY_TYPE
    if isinstance(t, list):
        return frozenset(t) & ANY_TYPE
    for k in ("anyOf", "oneOf"):
        if isinstance(s.get(k), list) and depth < 16:
            return frozenset().union(*(schema_types(b, defs, depth + 1) for b in s[k]))
    return ANY_TYPE


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


_NOT_JSON = object()


def _json(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return _NOT_JSON
    return value if _finite(value) else _NOT_JSON


def read_value(raw: str, types: frozenset[str] | None) -> Any:
    """A raw value typed by the schema's types, as vLLM's `coerce_to_schema_type` does it;
    `types` None (no schema): the text itself."""
    if types is None:
        return raw
    for t in TYPES[:-1]:
        if t not in types:
            continue
        if t == "null":
            if raw.lower() == "null":
                return None
        elif t == "integer":
            try:
                return int(raw)
            except ValueError:
                pass
        elif t == "number":
            try:
                number = float(raw)
            except ValueError:
                continue
            if math.isfinite(number):
                return int(number) if number == int(number) else number
        elif t == "boolean":
            word = raw.lower().strip()
            if word in ("true", "1", "false", "0"):
                return word in ("true", "1")
        else:
            value = _json(raw)
            if value is not _NOT_JSON:
                return value
    if "string" in types:
        return raw
    value = _json(raw)
    return raw if value is _NOT_JSON else value


def split_strings(schema: dict, defs: dict) -> tuple[list[dict], dict | None]:
    """-> (the schema's string branches, the schema without strings or None): strings are written
    raw, the rest as JSON."""
    s = _resolve(schema, defs)
    if "const" in s:
        return ([s], None) if isinstance(s["const"], str) else ([], s)
    if isinstance(s.get("enum"), list):
        strings = [v for v in s["enum"] if isinstance(v, str)]
        others = [v for v in s["enum"] if not isinstance(v, str)]
        return ([{**s, "enum": strings}] if strings else [], {**s, "enum": others} if others else None)
    t = s.get("type")
    if t is None:
        for k in ("anyOf", "oneOf"):
            if isinstance(s.get(k), list):
                parts = [split_strings(b, defs) for b in s[k]]
                branches = [x for p in parts for x in p[0]]
                rest = [p[1] for p in parts if p[1] is not None]
                return branches, ({**s, k: rest} if rest else None)
        return [{"type": "string"}], {**s, "type": [x for x in TYPES if x != "string"]}
    types = [t] if isinstance(t, str) else list(t)
    if "string" not in types:
        return [], s
    others = [x for x in types if x != "string"]
    return [{**s, "type": "string"}], ({**s, "type": others if len(others) > 1 else others[0]} if others else None)


# -- character classes ------------------------------------------------------------------------------
def _class_items(body: str) -> tuple[bool, list[tuple[int, int]]]:
    """`[^a-z\\n]` -> (negated, code point ranges)."""
    inner = body[1:-1]
    negated = inner.startswith("^")
    if negated:
        inner = inner[1:]
    chars: list[int] = []
    ranges: list[tuple[int, int]] = []
    i = 0
    simple = {"n": 10, "r": 13, "t": 9, "f": 12, "v": 11, "b": 8, "0": 0}

    def one(i: int) -> tuple[int, int]:
        if inner[i] != "\\":
            return ord(inner[i]), i + 1
        c = inner[i + 1]
        for prefix, width in (("x", 2), ("u", 4), ("U", 8)):
            if c == prefix:
                return int(inner[i + 2 : i + 2 + width], 16), i + 2 + width
        return simple.get(c, ord(c)), i + 2

    while i < len(inner):
        lo, i = one(i)
        if i + 1 < len(inner) and inner[i] == "-":
            hi, i = one(i + 1)
            ranges.append((lo, hi))
        else:
            chars.append(lo)
    return negated, ranges + [(c, c) for c in chars]


def without_chars(body: str, banned: str) -> str:
    """Rewrite every character class of an EBNF rule body so that it cannot match `banned`."""
    out = []
    for tok in E._TOKEN.findall(body):
        if tok.startswith("[") and tok.endswith("]") and len(tok) > 2:
            negated, ranges = _class_items(tok)
            if negated:
                missing = [c for c in banned if not any(lo <= ord(c) <= hi for lo, hi in ranges)]
                tok = tok[:2] + "".join(E.class_escape(ord(c)) for c in missing) + tok[2:]
            else:
                for c in map(ord, banned):
                    ranges = [r for lo, hi in ranges for r in ((lo, c - 1), (c + 1, hi)) if r[0] <= r[1]] if any(
                        lo <= c <= hi for lo, hi in ranges) else ranges
                if not ranges:
                    raise ValueError("a character class has nothing left")
                tok = "[" + "".join(E.class_escape(lo) + ("" if lo == hi else "-" + E.class_escape(hi)) for lo, hi in ranges) + "]"
        out.append(tok)
    return "".join(out)


def _escape_angle(tok: str) -> str:
    """A JSON text literal with `<` as `\\u003c` (EBNF-escaped)."""
    return tok.replace("<", "\\\\u003c")


def _digest(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=5).hexdigest()


@dataclass(frozen=True)
class XmlArguments(ArgumentCodec):
    parameter: str  # one argument: {key}, {value}, optionally {string} ("true": raw string, "false": JSON)
    separator: str = ""  # between arguments (whitespace)
    name: str = field(default="xml", init=False)

    def __post_init__(self) -> None:
        parsed = [(lit, f) for lit, f, _, _ in string.Formatter().parse(self.parameter)]
        fields = [f for _, f in parsed if f is not None]
        if fields not in (["key", "value"], ["key", "string", "value"]):
            raise ValueError(f"an xml parameter template needs {{key}}, optionally {{string}}, then {{value}}: {self.parameter!r}")
        head, after_key = parsed[0][0], parsed[1][0]
        flag_end = parsed[2][0] if len(fields) == 3 else ""
        post = parsed[-1][0] if parsed[-1][1] is None else ""
        lead_lit = flag_end if len(fields) == 3 else after_key
        close = post.strip(WHITESPACE)
        if not head.strip() or not after_key or not close or (len(fields) == 3 and not flag_end):
            raise ValueError(f"an xml parameter template needs a literal before {{key}}, after each field and after {{value}}: {self.parameter!r}")
        if self.separator.strip(WHITESPACE) or post[post.index(close) + len(close):].strip(WHITESPACE):
            raise ValueError("what follows a parameter's closing tag (and the separator) must be whitespace")
        core = lead_lit.rstrip(WHITESPACE)
        setattr_ = object.__setattr__
        setattr_(self, "head", head)
        setattr_(self, "after_key", after_key if len(fields) == 3 else core)
        setattr_(self, "flag_end", core if len(fields) == 3 else "")
        setattr_(self, "lead", lead_lit[len(core):])  # framing before the value
        setattr_(self, "close", close)
        setattr_(self, "value_end", post[: post.index(close) + len(close)])
        setattr_(self, "trail", post[: post.index(close)])  # framing after the value
        setattr_(self, "post", post)
        setattr_(self, "flagged", len(fields) == 3)
        # what a raw string may not contain: the closing tag, and the opening of another argument
        setattr_(self, "value_excludes", tuple(dict.fromkeys([close, head.strip(WHITESPACE)])))

    def markup(self) -> tuple[str, ...]:
        parts = (self.head, self.after_key, self.flag_end, self.lead, self.trail)  # type: ignore[attr-defined]
        return tuple(dict.fromkeys(p.strip(WHITESPACE) for p in parts if p.strip(WHITESPACE)))

    # -- the text ----------------------------------------------------------------------------------
    def _opening(self, key: str, flag: str) -> str:
        """Everything an argument writes before its value."""
        flag_part = flag + self.flag_end if self.flagged else ""  # type: ignore[attr-defined]
        return self.head + key + self.after_key + flag_part + self.lead  # type: ignore[attr-defined]

    def _types(self, schema: dict | None, key: str) -> frozenset[str] | None:
        props = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(props, dict) or key not in props:
            return None
        return schema_types(props[key], _definitions(schema))

    def write_value(self, key: str, value: Any, types: frozenset[str] | None) -> tuple[str, bool]:
        """-> (text, written raw). Raises ToolSpecError for a string this format cannot write."""
        if isinstance(value, str) and (types is None or "string" in types):
            inside = [x for x in self.value_excludes if x in value]  # type: ignore[attr-defined]
            if inside:
                raise ToolSpecError(f"the string value of {key!r} contains {inside[0]!r}, which this format cannot write (it has no escape)")
            if not self.flagged and read_value(value, types) != value:  # type: ignore[attr-defined]
                raise ToolSpecError(f"the string value {value!r} of {key!r} would read back as another type its schema admits")
            return value, True
        return json.dumps(value, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c"), False

    def encode(self, arguments: dict, schema: dict | None = None) -> str:
        parts = []
        for key, value in arguments.items():
            text, raw = self.write_value(key, value, self._types(schema, key))
            parts.append(self._opening(key, "true" if raw else "false") + text + self.post)  # type: ignore[attr-defined]
        return self.separator.join(parts)

    def jinja(self, arguments: str) -> str:
        """`encode` without the schema: a string raw, any other value JSON with `<` escaped."""
        raw = jinja_raw
        flag = ("{{ 'true' if v is string else 'false' }}" + raw(self.flag_end)) if self.flagged else ""  # type: ignore[attr-defined]
        value = "{{ v if v is string else (v | tojson | replace('<', '\\\\u003c')) }}"  # Jinja unescapes its literals once
        one = raw(self.head) + "{{ k }}" + raw(self.after_key) + flag + raw(self.lead) + value + raw(self.post)  # type: ignore[attr-defined]
        return self.jinja_pairs(arguments, one, raw(self.separator))

    def _expect(self, text: str, pos: int, literal: str) -> int:
        end = pos + len(literal)
        if text.startswith(literal, pos):
            return end
        if end > len(text) and literal.startswith(text[pos:]):
            raise _Incomplete
        raise ValueError(f"expected {literal!r}")

    def _walk(self, text: str, pos: int, final: bool = False) -> tuple[list[tuple[str, str | None, str]], int | None]:
        """The arguments from `pos`: ([(key, string flag, raw value)], end), end None while the
        text may still continue them (`final`: the text is all there is)."""
        head = self.head.lstrip(WHITESPACE)  # type: ignore[attr-defined]
        params: list[tuple[str, str | None, str]] = []
        end = pos
        while True:
            i = skip_ws(text, end)
            if not final and (i >= len(text) or (len(text) - i < len(head) and head.startswith(text[i:]))):
                return params, None
            if not text.startswith(head, i):
                return params, end
            try:
                j = i + len(head)
                stop = self.after_key[0]  # type: ignore[attr-defined]
                k = text.find(stop, j)
                if k < 0:
                    raise _Incomplete
                key = text[j:k]
                j = self._expect(text, k, self.after_key)  # type: ignore[attr-defined]
                flag = None
                if self.flagged:  # type: ignore[attr-defined]
                    k = text.find(self.flag_end[0], j)  # type: ignore[attr-defined]
                    if k < 0:
                        raise _Incomplete
                    flag = text[j:k]
                    if flag not in ("true", "false"):
                        raise ValueError(f"string={flag!r}")
                    j = self._expect(text, k, self.flag_end)  # type: ignore[attr-defined]
                k = text.find(self.close, j)  # type: ignore[attr-defined]
                if k < 0:
                    raise _Incomplete
            except _Incomplete:
                if final:
                    raise ValueError("an unfinished argument") from None
                return params, None
            if not key or any(c in key for c in "<>\n") or key in (p[0] for p in params):
                raise ValueError(f"bad or repeated argument name {key!r}")
            raw = text[j:k]
            lead, trail = self.lead, self.trail  # type: ignore[attr-defined]
            if lead and raw.startswith(lead):
                raw = raw[len(lead):]
            if trail and raw.endswith(trail):
                raw = raw[: len(raw) - len(trail)]
            params.append((key, flag, raw))
            end = k + len(self.close)  # type: ignore[attr-defined]

    def scan(self, text: str, pos: int) -> int | None:
        return self._walk(text, pos)[1]

    def _value(self, flag: str | None, raw: str, types: frozenset[str] | None) -> Any:
        if flag == "true":
            return raw
        if flag == "false":
            value = _json(raw)
            return raw if value is _NOT_JSON else value
        return read_value(raw, types)

    def _pairs(self, params: list[tuple[str, str | None, str]], schema: dict | None) -> list[tuple[str, Any]]:
        return [(key, self._value(flag, raw, self._types(schema, key))) for key, flag, raw in params]

    def decode(self, source: str, schema: dict | None = None) -> dict:
        params, end = self._walk(source, 0, final=True)
        if end is None or source[end:].strip(WHITESPACE):
            raise ValueError("not a complete list of xml parameters")
        return dict(self._pairs(params, schema))

    def arguments_text(self, source: str, schema: dict | None = None) -> str:
        return json.dumps(self.decode(source, schema), ensure_ascii=False)

    def partial_json(self, source: str, schema: dict | None = None) -> str:
        try:
            pairs = self._pairs(self._walk(source, 0)[0], schema)
        except ValueError:
            pairs = []
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}" for k, v in pairs)

    def name_problems(self, name: str, argument_names: list[str]) -> list[str]:
        bad = [a for a in argument_names if not a or a != a.strip() or any(c in a for c in '<>"&') or any(ord(c) < 0x20 for c in a)]
        return [f"argument names {bad} hold a character this encoding cannot write (<, >, \", &, a control character, or spaces at an end)"] if bad else []

    # -- the grammar ---------------------------------------------------------------------------------
    def ebnf(self, schema: dict, prefix: str, literal: Callable[[str], str] | None = None) -> E.Fragment:
        literal = literal or E.literal
        if schema.get("type") != "object" or any(k in schema for k in ("anyOf", "oneOf", "allOf")):
            raise ToolSpecError("the xml argument encoding needs an object schema with properties at the top level")
        defs = _definitions(schema)
        props = list((schema.get("properties") or {}).items())
        problems = self.name_problems("", [k for k, _ in props])
        if problems:
            raise ToolSpecError(problems[0])
        required = set(schema.get("required", []))
        rules: dict[str, str] = {}
        elements = []
        for i, (key, sub) in enumerate(props):
            alternatives = []
            for flag, value in self._value_rules(sub, defs, f"{prefix}p{i}_", rules):
                alternatives.append(f"({literal(self._opening(key, flag))} {value} {literal(self.post)})")  # type: ignore[attr-defined]
            rules[f"{prefix}a{i}"] = " | ".join(alternatives)
            elements.append(f"{prefix}a{i}")
        sep = f"{literal(self.separator)} " if self.separator else ""
        n = len(props)
        first, rest = f"{prefix}first_", f"{prefix}rest_"
        rules[f"{first}{n}"] = rules[f"{rest}{n}"] = '""'
        for i in range(n - 1, -1, -1):
            optional = props[i][0] not in required
            rules[f"{rest}{i}"] = f"({sep}{elements[i]} {rest}{i + 1})" + (f" | {rest}{i + 1}" if optional else "")
            rules[f"{first}{i}"] = f"({elements[i]} {rest}{i + 1})" + (f" | {first}{i + 1}" if optional else "")
        return E.Fragment(f"{first}0", rules)

    def _value_rules(self, sub: Any, defs: dict, prefix: str, rules: dict[str, str]) -> list[tuple[str, str]]:
        """-> [(string flag, rule)]: the raw-string branch ("true") and the JSON branch ("false")."""
        s = _resolve(sub, defs)
        types = schema_types(s, defs)
        strings, rest = split_strings(s, defs)
        out = []
        if strings:
            out.append(("true", self._raw_rules(strings, types, prefix, rules)))
        if rest is not None:
            frag = E.json_schema_rules({**rest, **({"$defs": defs} if defs else {})}, prefix, basic_prefix="xj_",
                                       transform=lambda body: without_chars(body, "<"), literal_map=_escape_angle)
            rules.update(frag.rules)
            out.append(("false", frag.root))
        if not out:
            raise ToolSpecError("a parameter schema admits no value")
        return out

    def _raw_rules(self, strings: list[dict], types: frozenset[str], prefix: str, rules: dict[str, str]) -> str:
        others = types - {"string"}
        plain = [s for s in strings if not any(k in s for k in _CONSTRAINED_STRING)]
        if plain:
            first = "".join(sorted({c for t in others for c in STARTS.get(t, "")}))
            return self._raw_text(first, ("null",) if "null" in others else (), rules)
        alternatives = []
        for j, s in enumerate(strings):
            alternatives.append(self._constrained(s, types, f"{prefix}s{j}_", rules))
        name = f"{prefix}str"
        rules[name] = " | ".join(f"({a})" for a in alternatives)
        return name

    def _constrained(self, s: dict, types: frozenset[str], prefix: str, rules: dict[str, str]) -> str:
        """A raw string under enum/const/pattern/format/length: it cannot hold the first character
        of a tag (`<`)."""
        banned = "".join(sorted({x[0] for x in self.value_excludes})) + "\x01"  # type: ignore[attr-defined]
        values = [s["const"]] if "const" in s else s.get("enum")
        if values is not None:
            ok = [v for v in values if isinstance(v, str) and not any(x in v for x in self.value_excludes)  # type: ignore[attr-defined]
                  and read_value(v, types) == v]
            if not ok:
                raise UnsupportedSchemaError("enum", "$", "none of its strings can be written raw in this format")
            return " | ".join(E.literal(v) for v in ok)
        if "pattern" in s:
            import xgrammar as xgr

            ebnf_text = str(xgr.Grammar.from_regex(s["pattern"]))
        elif "format" in s:
            import xgrammar as xgr

            ebnf_text = str(xgr.Grammar.from_json_schema(json.dumps({"type": "string", "format": s["format"]}), strict_mode=True))
            parsed = E.parse_rules(ebnf_text)
            root = parsed["root"].strip()
            inner = root[2:-2].strip() if root.startswith("((") and root.endswith("))") else root
            if not (inner.startswith('"\\"" ') and inner.endswith(' "\\""')):
                raise UnsupportedSchemaError("format", "$", f"format {s['format']!r} has no raw form")
            parsed["root"] = inner[5:-5]
            ebnf_text = "\n".join(f"{k} ::= {v}" for k, v in parsed.items())
        else:
            # raw text has no closing quote for constrained.lengths to count to: bounds above the
            # chain's limit are left to the check after decoding (xgrammar's repetition of a class
            # costs 0.5-1.6 s of compile time at 300-1000)
            lo, hi = s.get("minLength", 0), s.get("maxLength")
            lo = lo if lo <= LENGTH_CHAIN_LIMIT else 0
            hi = hi if hi is not None and hi <= LENGTH_CHAIN_LIMIT else -1
            return f"{E.char_class(banned)}{{{lo}, {hi}}}"
        try:
            frag = E._import(ebnf_text, prefix, "xs_", transform=lambda body: without_chars(body, banned))
        except ValueError:
            raise UnsupportedSchemaError("pattern", "$", "the pattern admits nothing but the first character of a tag") from None
        rules.update(frag.rules)
        return frag.root

    def _raw_text(self, first: str, words: tuple[str, ...], rules: dict[str, str]) -> str:
        """Any text without the value excludes (and no special token), that does not begin with a
        character of `first` and is none of `words` (in any case)."""
        excludes = (*self.value_excludes, "\x01")  # type: ignore[attr-defined]
        free = self._free(excludes, rules)
        if not first and not words:
            return free
        heads = sorted({x[0] for x in self.value_excludes})  # type: ignore[attr-defined]
        # after a tag's first character, the text may not continue the tag
        tails = {c: self._free(excludes + tuple(x[1:] for x in self.value_excludes if x[0] == c and len(x) > 1), rules)  # type: ignore[attr-defined]
                 for c in heads}
        base = f"xml_raw_{_digest(excludes, first, words)}"
        nodes = {""} | {w.lower()[:k] for w in words for k in range(len(w) + 1)}
        names = {node: f"{base}_{k}" for k, node in enumerate(sorted(nodes))}
        ends = {w.lower() for w in words}
        for node, rule in names.items():
            edges = sorted({c for w in words if w.lower().startswith(node) and len(w) > len(node)
                            for c in (w[len(node)].lower(), w[len(node)].upper())} - (set(first) if not node else set()))
            banned = set(edges) | (set(first) if not node else set())
            alternatives = [] if node in ends else ['""']
            alternatives += [f"{E.literal(c)} {names[(node + c).lower()]}" for c in edges]
            alternatives.append(f"{E.char_class(''.join(banned | set(heads)) + chr(1))} {free}")
            alternatives += [f"{E.literal(c)} {tails[c]}" for c in heads if c not in banned]
            rules[rule] = " | ".join(f"({a})" for a in alternatives)
        return names[""]

    def _free(self, excludes: tuple[str, ...], rules: dict[str, str]) -> str:
        name = f"xml_text_{_digest(excludes)}"
        rules[name] = f"TagDispatch(loop_after_dispatch=false, excludes=({', '.join(E.literal(x) for x in excludes)}))"
        return name


register_codec(XmlArguments("<parameter={key}>{value}</parameter>"))
