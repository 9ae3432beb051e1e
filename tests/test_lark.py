"""Our grammars translated to llguidance's Lark (constrained.lark) accept what xgrammar accepts:
both matchers walk the same random outputs and their masks are compared at every step."""

from __future__ import annotations

import codecs
import functools
import itertools
import json
import random
import re

import llguidance
import numpy as np
import pytest
import xgrammar as xgr
from corpus import CORPUS
from helpers import row_bits, whole_utf8
from hypothesis import example, given, settings
from hypothesis import strategies as st

from constrained import demo, lark
from constrained import dialect as registry
from constrained.budget import RowBudget
from constrained.compiler import grammar_cache
from constrained.decoding import GrammarState
from constrained.errors import ToolSpecError
from constrained.grammar import GrammarOptions
from constrained.lazy import LazyGrammar, LazyMatcher
from constrained.types import Tool

WEATHER = Tool("get_weather", {"type": "object", "properties": {
    "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]},
    "days": {"type": "integer", "minimum": 1, "maximum": 14}}, "required": ["city"]})


@functools.lru_cache(maxsize=4)  # a few: each holds a tokenizer and its grammar cache (~160 MB)
def _tokenizers(dialect_name: str):
    d = registry.get(dialect_name)
    tok = demo.load_tokenizer(d)
    stops = [tok.convert_tokens_to_ids(t) for t in d.chat.stop_tokens]
    ll_tok = grammar_cache(tok).llguidance_tokenizer
    n = len(tok)
    known = [i for i in range(n) if ll_tok.is_special_token(i)]
    return tok, ll_tok, stops, np.array(known, dtype=np.int64)


def _valid_utf8_prefix(data: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
        return True
    except UnicodeDecodeError:
        return False


def walk_both(dialect_name: str, tools: list[Tool], options: GrammarOptions, seed: int, steps: int, forced: bool = False) -> int:
    """A random walk through the grammar, served by xgrammar (guards and all) and by llguidance
    on the translation (`constrained.lazy`, as the server serves a large grammar); their masks
    must agree at every step, apart from the two differences where llguidance is stricter (see
    constrained.lark): special tokens never stand for text, and text stays valid UTF-8. With
    `forced`, both have a budget, and the text their closers force (jump-forward) must agree too.
    Returns the steps walked."""
    d = registry.get(dialect_name)
    tok, _, stops, special = _tokenizers(dialect_name)
    cache_ = grammar_cache(tok)
    ebnf = cache_.ebnf(d, tools, options)
    lark.to_lark(ebnf)  # NotTranslatable here: the caller skips this grammar
    served = cache_.compile(d, tools, options, ebnf=ebnf, lazy=True).grammar
    assert isinstance(served, LazyGrammar)
    ours = GrammarState(cache_.compile(d, tools, options, ebnf=ebnf, lazy=False).grammar, stops)
    theirs = GrammarState(served, stops)
    if forced:
        ours.budget = RowBudget(cache_.closer(d, stops), 10_000, 0)
        theirs.budget = RowBudget(cache_.closer(d, stops), 10_000, 0)
    n = cache_.vocab_size
    rng = random.Random(seed)
    out: list[int] = []
    bitmask = xgr.allocate_token_bitmask(2, n)
    for step in range(steps):
        context = f"{dialect_name} seed {seed} step {step} after {tok.decode(out)[-60:]!r}"
        if forced:
            assert ours.forced_text() == theirs.forced_text(), context
        ours.fill(bitmask, 0)
        theirs.fill(bitmask, 1)
        x = row_bits(bitmask[0], n)
        y = row_bits(bitmask[1], n)
        assert y[stops].any() == theirs.is_completed(), context  # stop tokens exactly where it is complete
        x[stops] = y[stops] = False
        x[special] &= y[special]
        so_far = b"".join(cache_.decoded_vocab[t] for t in out)
        extra = np.flatnonzero(x & ~y)
        if len(extra) and all(not _valid_utf8_prefix(so_far + cache_.decoded_vocab[int(t)]) for t in extra):
            x &= y
        assert (x == y).all(), (context, [tok.decode([int(t)]) for t in np.flatnonzero(x != y)[:10]])
        if ours.is_completed() != theirs.is_completed():
            # only where the text ends inside a character: xgrammar calls it complete, llguidance waits for the rest
            assert ours.is_completed() and not whole_utf8(so_far), context
            return step
        allowed = np.flatnonzero(x)
        if not len(allowed):
            return step
        token = int(rng.choice(allowed))
        assert ours.accept(token) and theirs.accept(token), context
        out.append(token)
    return steps


@pytest.mark.parametrize("name", registry.names())
def test_every_dialects_grammar_has_the_same_masks_in_llguidance(name):
    assert walk_both(name, [WEATHER], GrammarOptions(tool_choice="required"), seed=0, steps=60, forced=True) > 10


_CASES = [(f"{c[0]['function']['name']}", Tool(c[0]["function"]["name"], c[0]["function"].get("parameters"))) for c in CORPUS]


@pytest.mark.parametrize("dialect_name", ["hermes", "pythonic", "qwen3_xml"])
def test_the_tool_corpus_has_the_same_masks_in_llguidance(dialect_name):
    """Strict shapes, nesting, enums, $ref and recursion, patterns, odd names, unicode; each
    tool alone, `required` and `auto` (free text first, the reasoning block allowed)."""
    walked = translated = 0
    for k, (_, tool) in enumerate(_CASES):
        for options in (GrammarOptions(tool_choice="required"), GrammarOptions(tool_choice="auto")):
            try:
                walked += walk_both(dialect_name, [tool], options, seed=k, steps=40)
            except (lark.NotTranslatable, ToolSpecError):  # a construct kept for xgrammar; a name the dialect cannot write
                continue
            translated += 1
    assert translated >= 1.5 * len(_CASES) and walked > 20 * translated


def test_guarded_lengths_and_keys_are_exact_regexes():
    """A long length bound and an open object with many declared names: the translation counts
    characters as json.loads does and keeps every spelling of a declared name out of extra keys."""
    props = {f"name{i}": {"type": "string"} for i in range(30)}
    tool = Tool("t", {"type": "object", "properties": {
        "s": {"type": "string", "minLength": 10, "maxLength": 12},
        "o": {"type": "object", "properties": props, "additionalProperties": {"type": "integer"}}}, "required": ["s", "o"]})
    tok, ll_tok, _, _ = _tokenizers("hermes")
    d = registry.get("hermes")
    ebnf = grammar_cache(tok).ebnf(d, [tool], GrammarOptions(tool_choice="required"))
    assert "strlen_g" in ebnf and "keyx_" in ebnf  # the guarded forms are what is translated here
    grammar = llguidance.LLMatcher.grammar_from_lark(lark.to_lark(ebnf))

    def accepts(arguments: str) -> bool:
        m = llguidance.LLMatcher(ll_tok, grammar, log_level=0)
        text = '<tool_call>\n{"name": "t", "arguments": ' + arguments + "}\n</tool_call>"
        return all(m.consume_token(t) for t in tok.encode(text, add_special_tokens=False)) and m.is_accepting()

    assert accepts('{"s": "0123456789", "o": {"name0": "a", "other":1}}')
    assert accepts('{"s": "\\u00e9\\ud83d\\ude00abcdefgh", "o": {}}')  # an escape and a pair are one character each
    assert not accepts('{"s": "012345678", "o": {}}')  # 9 characters
    assert not accepts('{"s": "0123456789abc", "o": {}}')  # 13
    assert not accepts('{"s": "0123456789", "o": {"name3":1}}')  # a declared name as an extra key
    assert not accepts('{"s": "0123456789", "o": {"n\\u0061me3":1}}')  # the same name, escaped
    assert accepts('{"s": "0123456789", "o": {"n\\u0061me3x":1}}')


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=6))
def test_spellings_match_every_json_spelling_of_a_name_and_nothing_else(name):
    regex = re.compile(lark.spellings(name))
    assert regex.fullmatch(json.dumps(name)[1:-1])
    assert regex.fullmatch(json.dumps(name, ensure_ascii=False)[1:-1])
    every_char_escaped = "".join(json.dumps(c)[1:-1] if ord(c) > 0x7F else f"\\u{ord(c):04X}" for c in name)
    assert regex.fullmatch(every_char_escaped)
    assert not regex.fullmatch(json.dumps(name + "x")[1:-1])


def test_what_cannot_be_translated_exactly_is_refused_by_name():
    free_text_then_text = 'root ::= text "x" "y"\ntext ::= TagDispatch(loop_after_dispatch=false, excludes=("\\x01",))\n'
    with pytest.raises(lark.NotTranslatable, match="free text"):
        lark.to_lark(free_text_then_text)
    dotted_pattern = 'root ::= "\\"" key "\\""\nkey ::= Regex("a.*", json_string=true)\n'
    with pytest.raises(lark.NotTranslatable, match="pattern"):
        lark.to_lark(dotted_pattern)


def test_a_literal_spelled_by_characters_is_one_rule_wherever_it_is_used():
    """A literal is one lexeme per character; llguidance makes a terminal of each character it is
    written with, and a rule of each group, so each such literal is one rule that every use
    refers to (a large schema's grammar: 26,000 terminals -> 8,300), quantified or not."""
    text = lark.to_lark('root ::= "ab" ("cd")* "ef"{1, 2} "gh"? "ab" "x" "\\"k\\""\n')
    rules = dict(re.findall(r"^(\w+): (.*)$", text, re.M))
    spelled = {body: name for name, body in rules.items() if name.startswith("spelled_")}
    assert set(spelled) == {'"a" "b"', '"c" "d"', '"e" "f"', '"g" "h"'}
    ab, cd, ef, gh = (spelled[f'"{x}" "{y}"'] for x, y in ("ab", "cd", "ef", "gh"))
    assert rules["root"] == f'{ab} ( {cd} )* ({ef}){{1,2}} {gh}? {ab} "x" "\\"k\\""', rules["root"]
    tok, ll_tok, stops, _ = _tokenizers("kimi_k2")
    grammar = LazyGrammar.build(text, ll_tok, stops, len(tok))
    for s, complete in [('abefabx"k"', True), ('abcdcdefefghabx"k"', True), ("abefg", False), ("ab", False)]:
        m = LazyMatcher(grammar)
        assert m.accept_string(s) and m.accept_token(stops[0]) == complete, s
    for s in ('abcefabx"k"', 'abefefefabx"k"', 'aefabx"k"'):
        assert not LazyMatcher(grammar).accept_string(s), s


# random rule bodies, written alike in xgrammar's EBNF and in Python's regex (the same precedence:
# postfix, then sequence, then `|`), with groups that may or may not be needed
_LEAVES = st.sampled_from([('"a"', "a"), ('"b"', "b"), ('"c"', "c"), ('"ab"', "(?:ab)")])


def _bodies(inner):
    atom = st.one_of(_LEAVES, inner.map(lambda x: (f"( {x[0]} )", f"(?:{x[1]})")), inner.map(lambda x: (f"( ( {x[0]} ) )", f"(?:{x[1]})")))
    postfix = st.sampled_from([("", ""), ("*", "*"), ("?", "?"), ("+", "+"), ("{0, 2}", "{0,2}"), ("{1, 3}", "{1,3}")])
    quantified = st.tuples(atom, postfix).map(lambda p: (p[0][0] + p[1][0], p[0][1] + p[1][1]))
    sequence = st.lists(quantified, min_size=1, max_size=3).map(lambda xs: (" ".join(x[0] for x in xs), "".join(x[1] for x in xs)))
    return st.lists(sequence, min_size=1, max_size=3).map(lambda xs: (" | ".join(x[0] for x in xs), "|".join(x[1] for x in xs)))


_BODIES = st.recursive(_bodies(_LEAVES), _bodies, max_leaves=8)
_WORDS = ["".join(w) for n in range(6) for w in itertools.product("abc", repeat=n)]


@settings(max_examples=100, deadline=None)
@given(_BODIES)
@example(('"c" ( ( "a" | "b" ) ) "c"', "c(?:(?:a|b))c"))  # a choice unwrapped inside a group that is not
@example(('( "a" ( "b" | "c" )? ) | "c"', "(?:a(?:b|c)?)|c"))
def test_groups_and_quantifiers_keep_their_language(body):
    """Rule bodies of nested groups, choices and repetitions (the translation writes a group
    without its parentheses where that reads the same) accept exactly the words the same
    expression accepts as a regex, every word of a, b, c up to 5 letters."""
    ebnf, regex = body
    text = lark.to_lark(f"root ::= {ebnf}\n")
    tok, ll_tok, stops, _ = _tokenizers("kimi_k2")
    grammar = LazyGrammar.build(text, ll_tok, stops, len(tok))
    for word in _WORDS:
        m = LazyMatcher(grammar)
        accepted = (m.accept_string(word) if word else True) and m.accept_token(stops[0])
        assert accepted == bool(re.fullmatch(regex, word)), (word, ebnf, text.splitlines()[2])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(['"', "\\", "a", "é", "\n", "\x01", " ", "x", "u"]), max_size=12))
def test_a_literal_decodes_to_the_text_it_was_written_from(text):
    """`decode_literal` reads back what `ebnf.literal` writes (its shortcut for literals whose only
    escapes are quotes included)."""
    from constrained.ebnf import literal

    assert lark.decode_literal(literal(text)) == text
