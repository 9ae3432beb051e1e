"""What the grammar lets through, byte for byte, and the errors it raises."""

from __future__ import annotations

import json

import pytest
import xgrammar as xgr

from constrained import GrammarOptions, ToolSpecError, UnsupportedSchemaError
from constrained import dialect as registry
from constrained.compiler import grammar_cache
from constrained.demo import load_tokenizer
from constrained.grammar import content_from_response_format
from constrained.guards import matcher as guarded_matcher
from constrained.types import as_tools

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get-time.now", "parameters": {"type": "object", "properties": {}}}}


def accepts(dialect, tools, text, tokens=None, **options):
    """Does the grammar accept `text` (or token ids) completely?"""
    tok = load_tokenizer(dialect)
    compiled = grammar_cache(tok).compile(registry.get(dialect), tools, GrammarOptions(**options)).grammar
    m = guarded_matcher(compiled, override_stop_tokens=[tok.eos_token_id])
    ids = tokens if tokens is not None else tok.encode(text, add_special_tokens=False)
    return all(m.accept_token(t) for t in ids) and m.is_completed()


def kimi_call(name, idx, args='{"city": "Paris"}'):
    return f"<|tool_call_begin|>functions.{name}:{idx}<|tool_call_argument_begin|>{args}<|tool_call_end|>"


def kimi(*calls):
    return "<|tool_calls_section_begin|>" + "".join(calls) + "<|tool_calls_section_end|>"


def test_kimi_index_is_forced_from_the_conversation_count():
    text = kimi(kimi_call("get_weather", 3), kimi_call("get_weather", 4))
    assert accepts("kimi_k2", [WEATHER], text, tool_choice="required", first_index=3)
    assert not accepts("kimi_k2", [WEATHER], text, tool_choice="required", first_index=0)
    assert not accepts("kimi_k2", [WEATHER], kimi(kimi_call("get_weather", 3), kimi_call("get_weather", 3)), tool_choice="required", first_index=3)
    assert not accepts("kimi_k2", [WEATHER], kimi(kimi_call("get_weather", "03")), tool_choice="required", first_index=3)


def test_kimi_calls_of_several_tools_keep_each_tool_to_its_own_arguments():
    """The call rules share a rule per tool for the name and for the arguments across positions
    (grammar._Builder._indexed_calls): each position still pairs a name with its own arguments and
    takes only its own index."""
    tools = [WEATHER, TIME]
    now = '{}'
    assert accepts("kimi_k2", tools, kimi(kimi_call("get-time.now", 0, now), kimi_call("get_weather", 1), kimi_call("get-time.now", 2, now)),
                   tool_choice="required")
    assert not accepts("kimi_k2", tools, kimi(kimi_call("get-time.now", 0)), tool_choice="required")  # another tool's arguments
    assert not accepts("kimi_k2", tools, kimi(kimi_call("get_weather", 0, now)), tool_choice="required")  # city is required
    assert not accepts("kimi_k2", tools, kimi(kimi_call("get_weather", 0), kimi_call("get-time.now", 0, now)), tool_choice="required")
    assert not accepts("kimi_k2", tools, kimi(kimi_call("get_weather", 1)), tool_choice="required")
    text = build_ebnf_text("kimi_k2", tools)
    assert text.count('"get_weather"') == 1 and text.count("functions.") == 8  # one name rule; the prefix once per position
    # the name rule refers to another rule, so that xgrammar does not inline it into every position
    assert 'tool_head_0 ::= "get_weather" call_before_index' in text and 'call_before_index ::= ":"' in text


def build_ebnf_text(dialect, tools):
    return grammar_cache(load_tokenizer(dialect)).ebnf(registry.get(dialect), tools, GrammarOptions("required"))


def test_kimi_markers_must_be_the_special_tokens():
    tok = load_tokenizer("kimi_k2")
    text = kimi(kimi_call("get_weather", 0))
    special = tok.encode(text, add_special_tokens=False)
    assert accepts("kimi_k2", [WEATHER], text, tokens=special, tool_choice="required")
    # the same characters spelled by ordinary tokens are refused
    spelled = [t for piece in text.replace("|>", "|>\0").split("\0") if piece for t in tok.encode(piece, add_special_tokens=False)]
    plain = [t for ch in "<|tool_calls_section_begin|>" for t in tok.encode(ch, add_special_tokens=False)]
    assert not accepts("kimi_k2", [WEATHER], "", tokens=plain + spelled[1:], tool_choice="required")
    # and free text cannot spell a marker either
    assert not accepts("kimi_k2", [WEATHER], "", tokens=tok.encode("Hi", add_special_tokens=False) + plain, tool_choice="auto")


def test_names_with_dash_and_dot_compile_and_match():
    assert accepts("kimi_k2", [WEATHER, TIME], kimi(kimi_call("get-time.now", 0, "{}")), tool_choice="required")
    assert accepts("hermes", [WEATHER, TIME], '<tool_call>\n{"name": "get-time.now", "arguments": {}}\n</tool_call>', tool_choice="required")


def test_parallel_tool_calls_false_allows_one_call():
    two = kimi(kimi_call("get_weather", 0), kimi_call("get_weather", 1))
    assert accepts("kimi_k2", [WEATHER], two, tool_choice="required")
    assert not accepts("kimi_k2", [WEATHER], two, tool_choice="required", parallel_tool_calls=False)
    assert accepts("kimi_k2", [WEATHER], kimi(kimi_call("get_weather", 0)), tool_choice="required", parallel_tool_calls=False)


def test_max_calls_bounds_a_turn():
    calls = [f'get_weather(city="{i}")' for i in range(3)]
    assert accepts("pythonic", [WEATHER], "[" + ", ".join(calls) + "]", tool_choice="required", max_calls=3)
    assert not accepts("pythonic", [WEATHER], "[" + ", ".join(calls) + "]", tool_choice="required", max_calls=2)


def test_named_tool_choice_allows_only_that_tool():
    named = {"type": "function", "function": {"name": "get-time.now"}}
    assert accepts("kimi_k2", [WEATHER, TIME], kimi(kimi_call("get-time.now", 0, "{}")), tool_choice=named)
    assert not accepts("kimi_k2", [WEATHER, TIME], kimi(kimi_call("get_weather", 0)), tool_choice=named)


def test_none_and_auto():
    hermes_call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "x"}}\n</tool_call>'
    assert accepts("hermes", [WEATHER], "Just text.", tool_choice="none")
    assert not accepts("hermes", [WEATHER], "Text " + hermes_call, tool_choice="none")
    assert accepts("hermes", [WEATHER], "Text " + hermes_call, tool_choice="auto")
    assert accepts("hermes", [WEATHER], "Only text.", tool_choice="auto")
    assert not accepts("hermes", [WEATHER], "Only text.", tool_choice="required")
    # reasoning is left free, then the call
    assert accepts("hermes", [WEATHER], "<think>any <b>thing</b></think>\n" + hermes_call, tool_choice="required")
    assert not accepts("hermes", [WEATHER], "<think>x</think>\n" + hermes_call, tool_choice="required", reasoning=False)


def test_pythonic_auto_is_calls_or_text_not_both():
    assert accepts("pythonic", [WEATHER], '[get_weather(city="x")]', tool_choice="auto")
    assert accepts("pythonic", [WEATHER], "Hello.", tool_choice="auto")
    assert not accepts("pythonic", [WEATHER], '[get_weather(city="x")] and text', tool_choice="auto")
    assert not accepts("pythonic", [WEATHER], "[not a call]", tool_choice="auto")


def test_pythonic_values_are_python_literals():
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"on": {"type": "boolean"}, "v": {"type": ["string", "null"]}}, "required": ["on"]}}}
    assert accepts("pythonic", [tool], "[f(on=True, v=None)]", tool_choice="required")
    assert not accepts("pythonic", [tool], "[f(on=true)]", tool_choice="required")
    assert not accepts("pythonic", [tool], "[f(v=None)]", tool_choice="required")  # on is required


def test_whitespace_is_fixed_so_a_weak_model_cannot_loop():
    assert accepts("minimax_m1", [WEATHER], '<tool_calls>\n{"name": "get_weather", "arguments": {"city": "x"}}\n</tool_calls>', tool_choice="required")
    assert not accepts("minimax_m1", [WEATHER], '<tool_calls>\n{"name": "get_weather", "arguments": {"city":  "x"}}\n</tool_calls>', tool_choice="required")
    pretty = '<tool_calls>\n{\n  "name": "get_weather",\n  "arguments": {"city": "x"}\n}\n</tool_calls>'
    assert not accepts("minimax_m1", [WEATHER], pretty, tool_choice="required")


def test_response_format_json_schema_constrains_content():
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    assert accepts("hermes", [WEATHER], '{"answer": 42}', tool_choice="auto", content_schema=schema)
    assert not accepts("hermes", [WEATHER], "42", tool_choice="auto", content_schema=schema)
    assert accepts("hermes", [], '{"anything": [1]}', tool_choice="none", content_schema=True)


def test_response_format_follows_json_schema_unless_strict():
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    extra = '{"answer": 42, "why": "because"}'
    assert accepts("hermes", [], extra, tool_choice="none", content_schema=schema)
    assert not accepts("hermes", [], extra, tool_choice="none", content_schema=schema, content_additional_properties="forbid")
    assert content_from_response_format({"type": "json_schema", "json_schema": {"name": "v", "schema": schema}}) == (schema, "schema")
    strict = {"type": "json_schema", "json_schema": {"name": "v", "schema": schema, "strict": True}}
    assert content_from_response_format(strict) == (schema, "forbid")


@pytest.mark.parametrize("policy, accepted", [("forbid", False), ("schema", True)])
def test_tool_arguments_take_undeclared_properties_only_under_the_schema_policy(policy, accepted):
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "units": "C"}}\n</tool_call>'
    assert accepts("hermes", [WEATHER], text, tool_choice="required", additional_properties=policy) is accepted


def test_pythonic_never_generates_extra_keyword_arguments():
    """f(x=1, x=2) is a SyntaxError: extra kwargs could repeat, so none are generated under either policy."""
    for policy in ("forbid", "schema"):
        assert accepts("pythonic", [WEATHER], '[get_weather(city="Paris")]', tool_choice="required", additional_properties=policy)
        assert not accepts("pythonic", [WEATHER], '[get_weather(city="Paris", units="C")]', tool_choice="required", additional_properties=policy)


def test_unknown_policy_is_a_tool_spec_error():
    with pytest.raises(ToolSpecError, match="additional_properties must be one of forbid, schema"):
        GrammarOptions(additional_properties="allow")


def test_bounded_pattern_property_compiles_and_is_enforced():
    """A bounded pattern property (xgrammar 0.2.8's rule cache failed on it, 0.2.9 compiles it):
    whatever the xgrammar version, the grammar compiles and enforces the pattern."""
    data = {"type": "object", "patternProperties": {"^[a-z]{1,255}$": {"type": "number"}}, "additionalProperties": False}
    tool = {"type": "function", "function": {"name": "put", "parameters": {"type": "object", "properties": {"data": data}}}}
    text = '<tool_call>\n{"name": "put", "arguments": {"data": {"abc": 1}}}\n</tool_call>'
    assert accepts("hermes", [tool], text, tool_choice="required")
    assert not accepts("hermes", [tool], text.replace("abc", "ABC"), tool_choice="required")


class _RuleCacheFailure:
    """A compiler double that fails as xgrammar 0.2.8's cross-grammar rule cache did."""

    def __init__(self):
        self.calls = 0

    def compile_grammar(self, grammar):
        self.calls += 1
        raise RuntimeError("[12:00:00] cpp/grammar_compiler.cc:1: Check failed: (per_rule_fsm_hashes[ref_rule_id].has_value()) is false")


def test_rule_cache_failure_is_retried_without_the_cache():
    from constrained.compiler import compile_grammar

    tok = load_tokenizer("hermes")
    cache = grammar_cache(tok)
    markers = cache._dialect(registry.get("hermes"))[1]
    grammar = xgr.Grammar.from_ebnf(cache.ebnf(registry.get("hermes"), [WEATHER], GrammarOptions("required")))
    failing = _RuleCacheFailure()
    compiled = compile_grammar(failing, grammar, lambda: cache.compiler_for(markers, cached=False))
    assert failing.calls == 1
    # the retry's grammar is the real one: it takes a call and refuses a wrong argument type
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    for doc, ok in ((text, True), (text.replace('"Paris"', "1"), False)):
        m = guarded_matcher(compiled, override_stop_tokens=[tok.eos_token_id])
        assert (all(m.accept_token(t) for t in tok.encode(doc, add_special_tokens=False)) and m.is_completed()) is ok


def test_grammars_differing_only_in_a_token_id_get_their_own_masks():
    """xgrammar 0.2.8's cross-grammar rule cache hashes a rule without the ids of its Token(...)
    edges: a grammar compiled after another with the same rules around a different marker token got
    that grammar's masks (vLLM serving several dialects: longcat's named call allowed hermes'
    <tool_call>, which the matcher then refused, an HTTP 500). `grammar.token_element` gives each
    marker a dead alternative that spells its id, so the hashes differ and each first mask is its
    own dialect's, with xgrammar's cache on."""
    import numpy as np

    from constrained.compiler import GrammarCache

    tok = load_tokenizer("hermes", registry.get("longcat").vocab_markers)
    cache = GrammarCache(tok)  # fresh: its compilers hold only the grammars below
    named = GrammarOptions(tool_choice={"type": "function", "function": {"name": "get_weather"}})
    for name, own, other in (("hermes", "<tool_call>", "<longcat_tool_call>"), ("longcat", "<longcat_tool_call>", "<tool_call>")):
        m = guarded_matcher(cache.compile(registry.get(name), [WEATHER], named).grammar, override_stop_tokens=[tok.eos_token_id])
        mask = xgr.allocate_token_bitmask(1, cache.vocab_size)
        m.fill_next_token_bitmask(mask)
        bits = mask[0].numpy().view(np.uint32)
        allowed = [i for i in range(cache.vocab_size) if (bits[i >> 5] >> (i & 31)) & 1]
        assert tok.convert_tokens_to_ids(own) in allowed and tok.convert_tokens_to_ids(other) not in allowed, (name, tok.convert_ids_to_tokens(allowed))
        for t in allowed:  # the mask and the matcher agree: every allowed token is accepted
            assert m.accept_token(t), (name, tok.convert_ids_to_tokens([t]))
            m.rollback(1)


def test_other_compile_errors_are_not_retried():
    from constrained.compiler import compile_grammar

    class Broken:
        def compile_grammar(self, grammar):
            raise RuntimeError("something else")

    def uncached():
        raise AssertionError("no retry for an unrelated error")

    with pytest.raises(RuntimeError, match="something else"):
        compile_grammar(Broken(), None, uncached)


def test_cache_key_is_the_content_of_the_request():
    """Requests decoded separately (new dicts, new strings) hit; any change misses; a Mapping type
    marshal cannot write still gets a key."""
    import json
    from types import MappingProxyType

    from constrained.compiler import _cache_key

    d, opts = registry.get("hermes"), GrammarOptions("auto")
    text = json.dumps([WEATHER, TIME])

    def key(tools, options=opts, dialect=d):
        return _cache_key(dialect, as_tools(tools), options)

    assert key(json.loads(text)) == key(json.loads(text))
    changed = json.loads(text)
    changed[0]["function"]["parameters"]["properties"]["city"]["type"] = "integer"
    assert key(changed) != key(json.loads(text))
    assert key(json.loads(text), GrammarOptions("required")) != key(json.loads(text))
    assert key(json.loads(text), dialect=registry.get("kimi_k2")) != key(json.loads(text))
    described = json.loads(text)
    described[0]["function"]["description"] = "another description"
    assert key(described) == key(json.loads(text))  # descriptions are not part of the grammar
    consts = [key([{"function": {"name": "f", "parameters": {"const": c}}}]) for c in (1, 1.0, True)]
    assert len(set(consts)) == 3
    proxy = {"function": {"name": "f", "parameters": MappingProxyType(WEATHER["function"]["parameters"])}}
    assert key([proxy]) == key([{"function": {"name": "f", "parameters": MappingProxyType(dict(WEATHER["function"]["parameters"]))}}])


def test_compile_is_cached_by_content():
    tok = load_tokenizer("hermes")
    cache = grammar_cache(tok)
    a = cache.compile(registry.get("hermes"), [WEATHER], GrammarOptions("required"))
    b = cache.compile(registry.get("hermes"), [dict(WEATHER)], GrammarOptions("required"))
    assert a.grammar is b.grammar and b.cache_hit and b.seconds == 0.0


@pytest.mark.parametrize(
    "tools, choice, message",
    [
        ([], "required", "needs at least one tool"),
        ([WEATHER], {"type": "function", "function": {"name": "nope"}}, "'nope', which is not in tools"),
        ([WEATHER, WEATHER], "auto", "duplicate tool name 'get_weather'"),
        ([{"type": "function", "function": {"name": "bad name!"}}], "auto", "must match"),
        ([WEATHER], "sometimes", "tool_choice must be"),
    ],
)
def test_request_errors_name_the_problem(tools, choice, message):
    with pytest.raises(ToolSpecError, match=message):
        accepts("hermes", tools, "", tool_choice=choice)


def test_pythonic_cannot_write_dashed_names():
    with pytest.raises(ToolSpecError, match="not a Python identifier"):
        accepts("pythonic", [TIME], "", tool_choice="auto")


def test_unsupported_schema_keyword_is_named_with_its_path():
    # a `$ref` to a remote document cannot be enforced (or validated offline)
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}}}}
    with pytest.raises(UnsupportedSchemaError) as info:
        accepts("hermes", [tool], "", tool_choice="auto")
    err = info.value
    assert err.keyword == "$ref" and err.path == "$.properties.x.$ref" and err.tool == "f"
    assert "$ref" in str(err) and "$.properties.x" in str(err)


@pytest.mark.parametrize("dialect, prefix, marker", [
    ("kimi_k2", '<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "x', "<|tool_call_end|>"),
    ("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "x', "</tool_call>"),
    ("hermes", "Some text ", "</tool_call>"),
])
def test_marker_tokens_cannot_hide_in_strings_or_text(dialect, prefix, marker):
    """xgrammar treats an added token as its text, which would make Kimi's <|tool_call_end|> token
    legal inside an argument string; the grammar's vocabulary spells markers with \\x01 so it is not."""
    tok = load_tokenizer(dialect)
    compiled = grammar_cache(tok).compile(registry.get(dialect), [WEATHER], GrammarOptions("auto")).grammar
    m = guarded_matcher(compiled)
    assert all(m.accept_token(t) for t in tok.encode(prefix, add_special_tokens=False))
    assert not m.accept_token(tok.convert_tokens_to_ids(marker))


def test_chat_special_tokens_cannot_appear_in_arguments():
    tok = load_tokenizer("kimi_k2")
    compiled = grammar_cache(tok).compile(registry.get("kimi_k2"), [WEATHER], GrammarOptions("required")).grammar
    m = guarded_matcher(compiled)
    prefix = '<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{"city": "x'
    assert all(m.accept_token(t) for t in tok.encode(prefix, add_special_tokens=False))
    assert not m.accept_token(tok.convert_tokens_to_ids("<|im_end|>"))


def test_numbers_have_a_bounded_number_of_digits():
    """A weak model cannot write digits until its budget ends: integer parts take at most 40 digits
    (every 128-bit integer), fractions 20 (every double json.dumps writes), exponents 3
    (README: bounded runaway values)."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "n": {"type": "number"}, "i": {"type": "integer"}, "m": {"type": "integer", "minimum": 5}}}}}

    def ok(args):
        return accepts("hermes", [tool], f'<tool_call>\n{{"name": "f", "arguments": {args}}}\n</tool_call>', tool_choice="required")

    assert ok('{"i": ' + str(2**128) + "}") and ok('{"i": ' + "9" * 40 + "}") and not ok('{"i": ' + "9" * 41 + "}")
    assert ok('{"i": -' + "9" * 40 + "}") and not ok('{"i": -' + "9" * 41 + "}")
    assert ok('{"m": ' + "9" * 40 + "}") and not ok('{"m": ' + "9" * 41 + "}")
    assert ok('{"n": ' + json.dumps(0.00012345678901234567) + "}") and not ok('{"n": 1.' + "5" * 21 + "}")
    assert ok('{"n": 1e308}') and not ok('{"n": 1e3080}')


def test_marker_tokens_are_never_string_content_of_length_bounded_strings():
    """xgrammar writes length-bounded strings with a character class that admits control
    characters, i.e. our marker spelling: fixed, so a marker token cannot be string content."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "q": {"type": "string", "minLength": 2}}, "required": ["q"]}}}
    tok = load_tokenizer("hermes")
    compiled = grammar_cache(tok).compile(registry.get("hermes"), [tool], GrammarOptions("required")).grammar
    m = guarded_matcher(compiled)
    for t in tok.encode('<tool_call>\n{"name": "f", "arguments": {"q": "', add_special_tokens=False):
        assert m.accept_token(t)
    for marker in ("</think>", "</tool_call>", "<tool_call>"):
        assert not m.fork().accept_token(tok.convert_tokens_to_ids(marker)), marker
    assert m.fork().accept_string("ab")


def test_a_length_bounded_string_takes_no_raw_control_character():
    """xgrammar 0.2.8 writes a bounded string's characters as [^"\\\r\n], which takes a raw tab:
    invalid JSON. Our import bars control characters there as in every other string."""
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "s": {"type": "string", "maxLength": 4}}, "required": ["s"]}}}]
    call = '<tool_call>\n{{"name": "f", "arguments": {{"s": "{}"}}}}\n</tool_call>'
    assert accepts("hermes", tools, call.format("ab"), tool_choice="required")
    assert not accepts("hermes", tools, call.format("a\tb"), tool_choice="required")


# ----------------------------------------------------------------------------- equal rules merged

def _language(rules: dict[str, str], rule: str = "root") -> frozenset[str]:
    """The finite language of an acyclic grammar of literals, sequences, `|` and parentheses."""
    from constrained.ebnf import _TOKEN

    def alternation(toks: list[str], i: int) -> tuple[frozenset[str], int]:
        out, i = sequence(toks, i)
        while i < len(toks) and toks[i] == "|":
            more, i = sequence(toks, i + 1)
            out |= more
        return out, i

    def sequence(toks: list[str], i: int) -> tuple[frozenset[str], int]:
        out = frozenset([""])
        while i < len(toks) and toks[i] not in "|)":
            if toks[i] == "(":
                part, i = alternation(toks, i + 1)
                i += 1  # ")"
            else:
                part = frozenset([json.loads(toks[i])]) if toks[i].startswith('"') else _language(rules, toks[i])
                i += 1
            out = frozenset(a + b for a in out for b in part)
        return out, i

    # _TOKEN keeps a run of punctuation as one token: one per character here
    toks = [c for t in _TOKEN.findall(rules[rule]) for c in ([t] if t[0] in '"[' or t[0].isalpha() or t[0] == "_" else t)]
    return alternation([t for t in toks if not t.isspace()], 0)[0]


def _random_rules(data) -> dict[str, str]:
    from hypothesis import strategies as st

    n = data.draw(st.integers(2, 9))
    names = ["root"] + [f"r{i}" for i in range(1, n)] + ["keyx_guarded"]
    rules = {}
    for i, name in enumerate(names):
        later = names[i + 1:]  # acyclic: a rule refers only to later ones
        # '"r1"': a literal that spells a rule's name (merging must leave it alone)
        element = st.sampled_from(['"a"', '"b"', '"|"', '"r1"', *later]) if later else st.sampled_from(['"a"', '"b"'])
        seqs = data.draw(st.lists(st.lists(element, min_size=1, max_size=3), min_size=1, max_size=3))
        rules[name] = " | ".join("(" + " ".join(s) + ")" for s in seqs)
    return rules


def test_merging_equal_rules_keeps_the_language_and_leaves_no_two_bodies_equal():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from constrained.ebnf import merge_equal_rules

    def keep(name):
        return name == "root" or "keyx_" in name

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.data())
    def check(data):
        rules = _random_rules(data)
        # equal bodies on purpose: copies of some rules under new names, referred to by others
        for name in data.draw(st.lists(st.sampled_from(list(rules)[1:]), max_size=3, unique=True)):
            rules[name + "_copy"] = rules[name]
            rules["root"] = f"({rules['root']}) | ({name}_copy)"
        merged = merge_equal_rules(dict(rules), keep)
        assert _language(merged) == _language(rules)
        assert merged["keyx_guarded"] == rules["keyx_guarded"]  # a kept rule is never merged
        plain = [body for name, body in merged.items() if not keep(name)]
        assert len(plain) == len(set(plain))
        assert list(merged) == [n for n in rules if n in merged]  # order kept: the text is the same every run

    check()


def test_a_large_schema_grammar_is_smaller_with_equal_rules_merged_and_still_compiles():
    """The generated `configs_0` (a 152 KB deep configuration schema) writes thousands of rules
    that repeat ("a string or null" per nullable property, equal nested objects)."""
    from constrained.benchmarks.large_schemas import generate
    from constrained.ebnf import parse_rules
    from constrained.grammar import build_ebnf

    schema = dict(generate(5, 0))["configs_0"]
    d = registry.get("hermes")
    text = build_ebnf(d, [{"type": "function", "function": {"name": "apply", "parameters": schema}}], GrammarOptions("required"), {})
    rules = parse_rules(text)
    assert len(set(rules.values())) == len(rules)
    assert len(rules) < 4000, len(rules)  # 5,935 written before merging
    xgr.Grammar.from_ebnf(text)
