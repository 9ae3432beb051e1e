"""Extra keys of open objects with many declared names, guarded at run time (constrained.keys):
never a declared name (decoded: escaped spellings too), any other key taken, the mask exactly what
accepting allows, one rule whatever the names, and the compile cost that motivated it."""

from __future__ import annotations

import json
from functools import cache

import jsonschema
import pytest
import torch
import xgrammar as xgr
from helpers import hermes_compiler, hermes_tokenizer, mask_agrees_with_accepting
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrained.decoding import GrammarBatch, GrammarState
from constrained.guards import matcher as guarded_matcher
from constrained.keys import KeyGuard, key_rules
from constrained.schema import normalize
from constrained.schema.extra_keys import KEY_TRIE_LIMIT, trie_nodes
from constrained.tools.coverage import schema_grammar

NAMES = [f"{w}_{i}" for i, w in enumerate(
    "title body author created updated status owner labels score rank origin kind".split())]
assert trie_nodes(NAMES) > KEY_TRIE_LIMIT


def _open(names=NAMES, extra=True, **more):
    return {"type": "object", "properties": {n: {"type": "string"} for n in names}, "additionalProperties": extra, **more}


_tok, _compiler = hermes_tokenizer, hermes_compiler


@cache
def _compiled(schema_json: str):
    norm = normalize(json.loads(schema_json), additional_properties="schema")
    return _compiler().compile_grammar(schema_grammar(norm.schema))


def _valid(value, schema) -> bool:
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return False
    return len(value) == len(set(value))


def test_large_name_sets_get_one_guarded_rule_and_small_ones_stay_exact():
    text = str(schema_grammar(normalize(_open(), additional_properties="schema").schema))
    assert text.count("keyx_") >= 1 and "addl_key" not in text
    rules = key_rules(_compiled(json.dumps(_open())))
    assert rules is not None and set(rules.parents.values()) == {frozenset(NAMES)}
    small = _open(["a", "b"])
    assert key_rules(_compiled(json.dumps(small))) is None
    assert "addl_key" in str(schema_grammar(normalize(small, additional_properties="schema").schema))
    # the rules do not grow with the names: 12 names or 300, one key rule
    many = [f"property_number_{i}" for i in range(300)]
    assert str(schema_grammar(normalize(_open(many), additional_properties="schema").schema)).count(" ::= ") < 2 * 300 + 60


KEYS = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(NAMES).map(lambda n: n[:-1]),  # a prefix
    st.sampled_from(NAMES).map(lambda n: n + "x"),  # an extension
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)


def _written(key: str, escape_first: bool, ascii_only: bool, colon: str = ":") -> str:
    """``{"title_0": "t", KEY:true}`` (an extra key's compact colon) with the key written plainly or
    with its first character as a \\u escape."""
    spelled = json.dumps(key, ensure_ascii=ascii_only)
    if escape_first and key:
        # the rest spelled on its own: the first character may take more than one place (`\\"`)
        spelled = '"' + f"\\u{ord(key[0]):04x}" + json.dumps(key[1:], ensure_ascii=ascii_only)[1:] if ord(key[0]) < 0x10000 else spelled
    return '{"title_0": "t", ' + spelled + colon + "true}"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS, escape_first=st.booleans(), ascii_only=st.booleans())
def test_an_extra_key_is_taken_exactly_when_it_is_not_declared(key, escape_first, ascii_only):
    """As a whole and token by token: refused exactly when the key, decoded, is a declared name
    (xgrammar's own trie would let the escaped spelling of a declared name through)."""
    schema = _open()
    compiled = _compiled(json.dumps(schema))
    written = _written(key, escape_first, ascii_only)
    ok = key not in NAMES
    whole = guarded_matcher(compiled, terminate_without_stop_token=True)
    assert isinstance(whole, KeyGuard)
    assert (whole.accept_string(written) and whole.is_completed()) == ok
    by_token = guarded_matcher(compiled, terminate_without_stop_token=True)
    assert (all(by_token.accept_token(t) for t in _tok().encode(written, add_special_tokens=False)) and by_token.is_completed()) == ok
    assert ok == _valid(json.loads(written), schema) or key == "title_0"  # a repeated key: json.loads keeps one
    # the declared form of the colon is the declared property's: an extra key cannot take it
    assert not guarded_matcher(compiled).accept_string(_written(key, escape_first, ascii_only, colon=": "))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS, escape_first=st.booleans(), cuts=st.lists(st.integers(1, 5), max_size=8))
def test_the_mask_allows_exactly_the_tokens_accepted(key, escape_first, cuts):
    """Token boundaries anywhere (inside escapes too): at every step the mask allows the next token
    exactly when accepting it does, so sampling never meets a refusal."""
    compiled = _compiled(json.dumps(_open()))
    m = mask_agrees_with_accepting(compiled, _written(key, escape_first, len(cuts) % 2 == 0), cuts)
    assert (m is not None and m.is_completed()) == (key not in NAMES)


def _allowed(bitmask, text: str) -> bool:
    (token,) = _tok().encode(text, add_special_tokens=False)
    return bool((int(bitmask[0, token >> 5]) >> (token & 31)) & 1)


def test_a_declared_name_closes_only_as_its_declared_property():
    """``title_0`` after ``status_5`` is out of the declared order: as an extra key its closing
    quote is masked. ``status_5`` after ``title_0`` is the declared property: its quote is
    allowed, and then only its ``": "`` (the extra-key parse's compact ``":"`` value is masked)."""
    compiled = _compiled(json.dumps(_open()))
    bitmask = xgr.allocate_token_bitmask(1, len(_tok()))
    late = guarded_matcher(compiled, terminate_without_stop_token=True)
    assert late.accept_string('{"status_5": "t", "title_0')
    late.fill_next_token_bitmask(bitmask, 0)
    assert not _allowed(bitmask, '"') and _allowed(bitmask, "x")  # title_0x is another key
    assert not late.fork().accept_string('":1}') and late.fork().accept_string('x":1}')

    declared = guarded_matcher(compiled, terminate_without_stop_token=True)
    assert declared.accept_string('{"title_0": "t", "status_5')
    declared.fill_next_token_bitmask(bitmask, 0)
    assert _allowed(bitmask, '"')
    assert declared.accept_string('":')
    declared.fill_next_token_bitmask(bitmask, 0)
    assert _allowed(bitmask, " ") and not _allowed(bitmask, '"') and not _allowed(bitmask, "1")
    assert declared.accept_string(' "u"}') and declared.is_completed()


SCHEMAS = [
    _open(extra={"type": "integer"}),
    {"type": "object", "properties": {"a": {"anyOf": [_open(), _open([n + "_b" for n in NAMES])]}}, "required": ["a"]},
    {"type": "array", "items": {"$ref": "#/$defs/T"}, "minItems": 1, "maxItems": 2, "$defs": {"T": _open(required=["title_0"])}},
]


@pytest.mark.parametrize("which", range(len(SCHEMAS)))
def test_sampled_decoding_validates(which):
    """Random logits, with the tokens of declared names pushed up, under the batch's masks: every
    output completes, has no repeated key, and validates (nested in anyOf, arrays and $defs)."""
    schema = SCHEMAS[which]
    tok = _tok()
    compiled = _compiled(json.dumps(schema))
    states = [GrammarState(compiled, [tok.eos_token_id]) for _ in range(3)]
    batch = GrammarBatch(len(tok), capacity=3)
    gen = torch.Generator().manual_seed(which)
    push = torch.zeros(len(tok))
    for n in NAMES:
        push[tok.encode(n, add_special_tokens=False)] = 4.0
        push[tok.encode(n + '"', add_special_tokens=False)[-1]] = 4.0
    for closing in ("}", "]", '"}', '"]'):
        push[tok.convert_tokens_to_ids(closing)] = 3.0  # so that random outputs end
    out: list[list[int]] = [[] for _ in states]
    for _ in range(400):
        live = [s if not s.is_terminated() else None for s in states]
        if not any(live):
            break
        rows = batch.fill(live)
        scores = torch.randn(len(states), len(tok), generator=gen) + push
        batch.apply(scores, rows)
        picks = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=gen)[:, 0].tolist()
        for i, s in enumerate(live):
            if s is not None:
                assert s.accept(picks[i]), "the mask allowed a token the guard refuses"
                out[i].append(picks[i])
    finished = 0
    for i, s in enumerate(states):
        if not s.is_terminated():
            continue  # random logits may write a long string: the guarantee is about what ends
        finished += 1
        text = tok.decode(out[i][:-1])
        value = json.loads(text, object_pairs_hook=_no_repeats)
        jsonschema.validate(value, schema)
    assert finished


def _no_repeats(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), keys
    return dict(pairs)
