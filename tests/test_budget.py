"""Every output parses, also when the token budget runs out (constrained.budget).

The random demo model WITHOUT any nudge is the harshest user: left alone it opens strings it never
closes and rambles until the budget ends. Under the budget-aware grammar, for every dialect,
tool_choice, budget and seed, every output must be complete, parse, validate, carry a call when
one is required, and be flagged when the budget closed it early.
"""

from __future__ import annotations

import functools
import json
import os

import pytest
from helpers import ExactSample

from constrained import StreamingParser, ToolCallLogitsProcessor, demo, parse
from constrained import dialect as registry
from constrained.budget import BudgetTooSmall
from constrained.chat import prepare_history, render_prompt

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 14},
                                     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "days"]}}}
SEARCH = {"type": "function", "function": {"name": "search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string", "minLength": 2}, "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                                     "filters": {"type": "object", "properties": {"year": {"type": "integer"}, "exact": {"type": "boolean"}},
                                                 "required": ["year"]}},
    "required": ["query", "tags"]}}}
TOOLS = [WEATHER, SEARCH]
SEEDS = 5
BUDGETS = ("min", "min+3", 24, 48, 96, 256)
CHOICES = ("required", "named", "auto")
# The full budget matrix runs for the seed dialects; the others run a short one (min, min+3, 48),
# unless CONSTRAINED_BUDGET_MATRIX=full (each full case costs ~1 min of CPU: 1,300 steps of 5 rows).
FULL_MATRIX = {"kimi_k2", "minimax_m1", "hermes", "pythonic"}
SHORT_BUDGETS = ("min", "min+3", 48)


def _budgets(dialect_name):
    full = os.environ.get("CONSTRAINED_BUDGET_MATRIX") == "full" or dialect_name in FULL_MATRIX
    return BUDGETS if full else SHORT_BUDGETS


@functools.lru_cache(maxsize=4)  # a few models and tokenizers, not one per dialect for the whole run
def _load(dialect_name):
    return demo.load_random(dialect_name)


def _choice(name):
    return {"type": "function", "function": {"name": "search"}} if name == "named" else name


def _think_cases():
    return [(d, think) for d in registry.names() for think in ((False, True) if registry.get(d).reasoning else (False,))]


def _run(dialect_name, choice, budget, think_open, seed=0):
    """SEEDS rows sampled at temperature 1 (no nudge) -> [(text, ParseResult, forced, complete)];
    None when the budget is below the shortest answer (refused before decoding, as checked here)."""
    model, tok = _load(dialect_name)
    d = registry.get(dialect_name)
    prompt = render_prompt(d, prepare_history([{"role": "user", "content": "Use the tools."}], d), TOOLS)
    if think_open:
        prompt += d.reasoning[0]
    proc = ToolCallLogitsProcessor(tok, d, TOOLS, _choice(choice), vocab_size=model.config.vocab_size, think_open=think_open)
    minimum = proc.minimum_tokens()
    assert minimum is not None  # the closer finds a way to finish every grammar of these tools
    if budget == "min":
        budget = minimum
    elif budget == "min+3":
        budget = minimum + 3
    enc = tok([prompt] * SEEDS, return_tensors="pt", add_special_tokens=False)
    if budget < minimum:
        with pytest.raises(BudgetTooSmall, match=f"shortest needs {minimum} tokens"):
            model.generate(**enc, logits_processor=[proc, ExactSample(seed)], do_sample=False, max_new_tokens=budget,
                           pad_token_id=tok.pad_token_id)
        return None
    out = model.generate(**enc, logits_processor=[proc, ExactSample(seed)], do_sample=False, max_new_tokens=budget,
                         pad_token_id=tok.pad_token_id)
    gen = out[:, enc["input_ids"].shape[1]:]
    rows = []
    for r in range(SEEDS):
        result = proc.parse(gen[r], r)
        ids = [t for t in gen[r].tolist() if t != tok.pad_token_id]
        assert len(ids) <= budget
        _check_stream(d, tok, [t for t in ids if t != tok.eos_token_id], result, think_open)
        rows.append((tok.decode(ids), result, proc.budget_forced(r), proc.is_done(r)))
    return rows


def _check_stream(d, tok, ids, result, think_open):
    """Streamed token by token, the deltas join to exactly the whole-text parse."""
    stream = StreamingParser(d, tools=TOOLS, think_open=think_open)  # the xml encoding reads values by schema
    calls: dict[int, dict] = {}
    deltas = []
    prev = ""
    for k in range(1, len(ids) + 1):
        now = tok.decode(ids[:k]).rstrip("\ufffd")  # a partial UTF-8 character waits for its next byte
        assert now.startswith(prev)
        deltas += stream.feed(now[len(prev):])
        prev = now
    deltas += stream.finish()
    for delta in deltas:
        for tc in delta.get("tool_calls", []):
            c = calls.setdefault(tc["index"], {"name": "", "arguments": ""})
            c["name"] += tc.get("function", {}).get("name", "") or ""
            c["arguments"] += tc.get("function", {}).get("arguments", "") or ""
    assert [(c["name"], c["arguments"]) for _, c in sorted(calls.items())] == [
        (c["function"]["name"], c["function"]["arguments"]) for c in result.tool_calls]


@pytest.mark.parametrize("dialect_name, think_open", _think_cases())
def test_every_output_completes_within_the_budget(dialect_name, think_open):
    checked = expected = 0
    for choice in CHOICES:
        for budget in _budgets(dialect_name):
            rows = _run(dialect_name, choice, budget, think_open)
            if rows is None:
                continue
            expected += SEEDS
            for text, result, forced, complete in rows:
                where = f"{dialect_name} {choice} budget={budget} think_open={think_open}: {text!r}"
                assert complete, where  # the grammar reached its end (EOS) within the budget
                assert result.violations == [], where
                for call in result.tool_calls:
                    assert isinstance(json.loads(call["function"]["arguments"]), dict), where
                if choice in ("required", "named"):
                    assert result.tool_calls, where
                if choice == "named":
                    assert {c["function"]["name"] for c in result.tool_calls} == {"search"}, where
                if result.truncated:
                    assert forced, where  # a flagged call is one the budget closed
                checked += 1
    assert checked == expected >= len(CHOICES) * 2 * SEEDS  # min and min+3 run for every choice


def test_a_budget_below_the_shortest_call_is_refused_before_decoding():
    tok = demo.load_tokenizer("kimi_k2")
    proc = ToolCallLogitsProcessor(tok, "kimi_k2", [WEATHER], "required")
    minimum = proc.minimum_tokens()
    with pytest.raises(BudgetTooSmall) as info:
        ToolCallLogitsProcessor(tok, "kimi_k2", [WEATHER], "required", max_new_tokens=minimum - 1)
    assert info.value.minimum == minimum and str(minimum) in str(info.value)
    ToolCallLogitsProcessor(tok, "kimi_k2", [WEATHER], "required", max_new_tokens=minimum)  # exactly enough
    assert ToolCallLogitsProcessor(tok, "kimi_k2", [WEATHER], "auto").minimum_tokens() == 1  # EOS alone is an answer


def test_budget_forced_calls_are_flagged_or_dropped():
    """A long string argument cut by the budget: the call is complete and valid, flagged, and
    finish_reason would be "length"; with budget_calls="drop" it is left out."""
    model, tok = _load("hermes")
    d = registry.get("hermes")
    prompt = render_prompt(d, prepare_history([{"role": "user", "content": "Search."}], d), [SEARCH])
    enc = tok([prompt] * SEEDS, return_tensors="pt", add_special_tokens=False)
    flagged = dropped = 0
    for calls in ("flag", "drop"):
        proc = ToolCallLogitsProcessor(tok, d, [SEARCH], "required", budget_calls=calls, vocab_size=model.config.vocab_size)
        # no nudge, greedy over an ExactSample: the random model writes long strings, so 64 tokens cut them
        out = model.generate(**enc, logits_processor=[proc, ExactSample(3)], do_sample=False, max_new_tokens=64, pad_token_id=tok.pad_token_id)
        for r in range(SEEDS):
            result = proc.parse(out[r, enc["input_ids"].shape[1]:], r)
            assert result.violations == []
            if calls == "flag" and result.truncated:
                assert proc.budget_forced(r) and result.truncated == list(range(len(result.tool_calls)))[-len(result.truncated):]
                flagged += 1
            if calls == "drop":
                assert result.truncated == []
                dropped += proc.budget_forced(r)
    assert flagged and dropped  # the budget did close some calls, and each mode reported it its way


def test_the_budget_comes_from_the_generate_call():
    """No max_new_tokens on the processor: it reads the budget of the generate call it serves,
    a new call starts fresh, and beam search is refused with a clear error."""
    model, tok = _load("kimi_k2")
    d = registry.get("kimi_k2")
    prompt = render_prompt(d, prepare_history([{"role": "user", "content": "Weather?"}], d), [WEATHER])
    enc = tok([prompt], return_tensors="pt", add_special_tokens=False)
    proc = ToolCallLogitsProcessor(tok, d, [WEATHER], "required", vocab_size=model.config.vocab_size)
    for budget in (proc.minimum_tokens(), 40):
        out = model.generate(**enc, logits_processor=[proc, ExactSample(budget)], do_sample=False, max_new_tokens=budget, pad_token_id=tok.pad_token_id)
        generated = out.shape[1] - enc["input_ids"].shape[1]
        # the processor saw every token but the last (generate stops after sampling it)
        assert proc.states[0].budget is not None and proc.states[0].budget.left == budget - generated + 1
        assert proc.parse(out[0, enc["input_ids"].shape[1]:]).tool_calls
    with pytest.raises(BudgetTooSmall):
        model.generate(**enc, logits_processor=[proc], do_sample=False, max_new_tokens=3, pad_token_id=tok.pad_token_id)
    with pytest.raises(ValueError, match="beam search"):
        model.generate(**enc, logits_processor=[proc], num_beams=2, do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id)


def test_generate_continuing_a_previous_output_starts_fresh():
    """A second generate call on the first one's output (the output is now prompt) is a new call:
    fresh grammar states and budget, found by that call's own generation_config, not guessed from
    input_ids (which continue the previous call's by one token)."""
    import torch

    model, tok = _load("kimi_k2")
    d = registry.get("kimi_k2")
    prompt = render_prompt(d, prepare_history([{"role": "user", "content": "Weather?"}], d), [WEATHER])
    enc = tok([prompt], return_tensors="pt", add_special_tokens=False)
    proc = ToolCallLogitsProcessor(tok, d, [WEATHER], "required", vocab_size=model.config.vocab_size, max_new_tokens=40)
    first = model.generate(**enc, logits_processor=[proc, ExactSample(1)], do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id)
    assert proc.is_done() and proc.parse(first[0, enc["input_ids"].shape[1]:]).tool_calls
    states = proc.states
    again = model.generate(first, attention_mask=torch.ones_like(first), logits_processor=[proc, ExactSample(2)], do_sample=False,
                           max_new_tokens=40, pad_token_id=tok.pad_token_id)
    assert proc.states is not states and proc.is_done()
    result = proc.parse(again[0, first.shape[1]:])
    assert [c["function"]["name"] for c in result.tool_calls] == ["get_weather"] and result.content is None


def test_parse_flags_calls_that_end_after_the_budget_took_over():
    d = registry.get("kimi_k2")
    call = '<|tool_call_begin|>functions.get_weather:{i}<|tool_call_argument_begin|>{{"city": "P", "days": 1}}<|tool_call_end|>'
    text = "<|tool_calls_section_begin|>" + call.format(i=0) + call.format(i=1) + "<|tool_calls_section_end|>"
    second = text.index(call.format(i=1))
    r = parse(text, d, [WEATHER], budget_closed_at=second + 5)
    assert len(r.tool_calls) == 2 and r.truncated == [1]
    assert parse(text, d, [WEATHER], budget_closed_at=second + 5, budget_calls="drop").tool_calls == r.tool_calls[:1]
    assert parse(text, d, [WEATHER]).truncated == []


def test_think_open_output_starts_inside_the_think_block():
    d = registry.get("hermes")
    r = parse('plan it</think><tool_call>\n{"name": "get_weather", "arguments": {"city": "P", "days": 2}}\n</tool_call>', d, [WEATHER], think_open=True)
    assert r.reasoning == "plan it" and [c["function"]["name"] for c in r.tool_calls] == ["get_weather"]



EMAIL = {"type": "function", "function": {"name": "send_email", "parameters": {
    "type": "object", "properties": {"to": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1},
                                     "subject": {"type": "string"}}, "required": ["to", "subject"]}}}


@pytest.mark.parametrize("dialect_name, prefix", [
    ("pythonic", ""),
    ("pythonic", '[send_email(to=["'),
    ("pythonic", '[send_email(to=["a.b'),
    ("hermes", '<tool_call>\n{"name": "send_email", "arguments": {"to": ["x\''),
])
def test_a_closing_plan_leaves_patterns_that_go_round_in_circles(dialect_name, prefix):
    """Inside an email's local part, `'` and `.` are string content that lead back and forth
    between two states: the plan must step out (to `@` and a domain), not alternate until its limit."""
    tok = demo.load_tokenizer(dialect_name)
    proc = ToolCallLogitsProcessor(tok, dialect_name, [EMAIL], "required")
    from constrained.decoding import GrammarState

    state = GrammarState(proc.compiled, proc.stop_ids)
    assert all(state.matcher.accept_token(t) for t in tok.encode(prefix, add_special_tokens=False))
    for order in proc.closer.orders:  # each preference order finds its way out, not only the first
        plan = proc.closer._walk(state.matcher.fork(), order, 200)
        assert plan is not None and len(plan) < 40, plan
        text = prefix + tok.decode([t for t in plan if t not in proc.stop_ids])
        result = parse(text, dialect_name, tools=[EMAIL])
        assert result.violations == [] and [c["function"]["name"] for c in result.tool_calls] == ["send_email"], text


def test_one_closer_plans_on_several_threads_at_once():
    """The server plans on its engine thread and checks budgets on request threads with one
    Closer: its mask buffers are per thread, so concurrent plans equal the plans made alone."""
    from concurrent.futures import ThreadPoolExecutor

    from constrained.decoding import GrammarState

    tok = demo.load_tokenizer("kimi_k2")
    procs = [ToolCallLogitsProcessor(tok, "kimi_k2", tools, "required") for tools in ([WEATHER], [SEARCH], TOOLS, [EMAIL])]
    closer = procs[0].closer
    assert all(p.closer is closer for p in procs)

    def plan(proc):
        return closer.plan(GrammarState(proc.compiled, proc.stop_ids).matcher, 400)

    alone = [plan(p) for p in procs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(plan, procs * 4)) == alone * 4


NOTE = {"type": "function", "function": {"name": "write_note", "parameters": {
    "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}


def test_a_plan_outlives_string_content_and_far_budgets_measure_rarely(monkeypatch):
    """Inside a string, content tokens leave the way out as it was: the plan made before them still
    finishes the output (checked by accepting it on a fork, no search). Far from the end of the
    budget the row measures again only when the zone could have come near (the gap closes by at
    most margin + 1 per token), so a long argument costs a handful of searches, not one per 8 tokens."""
    from constrained.budget import REFRESH_EVERY, RowBudget
    from constrained.decoding import GrammarState

    tok = demo.load_tokenizer("hermes")
    proc = ToolCallLogitsProcessor(tok, "hermes", [NOTE], "required")
    closer = proc.closer
    state = GrammarState(proc.compiled, proc.stop_ids)
    assert state.accept_tokens(tok.encode('<tool_call>\n{"name": "write_note", "arguments": {"text": "', add_special_tokens=False))
    plan = closer.plan(state.matcher, 100)
    words = tok.encode("a long note " * 40, add_special_tokens=False)
    assert closer.replays(state.matcher, plan, first=words[0])
    assert state.accept_tokens(words) == len(words)
    assert closer.replays(state.matcher, plan)
    assert not closer.replays(state.matcher, plan[1:])  # without its closing quote the output does not end
    # a row far from its end: U measured rarely, and its plan still closes the string
    searches = []
    monkeypatch.setattr(type(closer), "plan", lambda self, m, limit, _plan=type(closer).plan: searches.append(1) or _plan(self, m, limit))
    row = GrammarState(proc.compiled, proc.stop_ids, RowBudget(closer, 4000, 20))
    assert row.accept_tokens(tok.encode('<tool_call>\n{"name": "write_note", "arguments": {"text": "', add_special_tokens=False))
    for token in words * 3:
        assert not row.budget.in_zone(row)
        assert row.accept(token)
    assert len(words) * 3 > 300 and len(searches) <= 3, len(searches)
    assert row.budget.refresh_every > REFRESH_EVERY
    assert closer.replays(row.matcher, row.budget.plan)


def test_the_way_out_closes_a_section_whose_markers_are_text():
    """PLaMo 3's markers are text of several tokens. After a call, the grammar forces `<|plamo:`,
    the start of both the section's end and the next call's opening: the closing plan must take
    the section's end there, not write calls up to max_calls (it wrote 8: 900 tokens, not 140)."""
    tok = demo.load_tokenizer("plamo3")
    proc = ToolCallLogitsProcessor(tok, "plamo3", [WEATHER], "required")
    plan = proc.closer.plan(proc._state(None).matcher, 4096)
    text = tok.decode(plan)
    assert text.count("<|plamo:begin_tool_request:plamo|>") == 1, text
    assert text.removesuffix(tok.eos_token).endswith("<|plamo:end_tool_requests:plamo|>"), text
    assert proc.minimum_tokens() == len(plan)
