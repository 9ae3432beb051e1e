"""Jump-forward inside `model.generate` (`custom_generate=constrained.jump_forward`) and the forced
text it feeds: the trained model writes the same answers in fewer forward passes; the random model,
sampling, still gets only complete, valid outputs within max_new_tokens."""

from __future__ import annotations

import pytest
import torch
from corpus import tools_for

import constrained
from constrained import ToolCallLogitsProcessor, demo, dialogues, parse
from constrained import dialect as registry
from constrained.chat import prepare_history, render_prompt
from constrained.compiler import eos_token_ids
from constrained.decoding import GrammarState
from constrained.tokenizer import ForcedTokens

HELD_OUT_SEED = 1_000_003  # the benchmark's held-out dialogues (training used seed 0's stream)


@pytest.fixture(scope="module")
def trained_models():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = demo.load(name)
        return cache[name]

    return get


def _run(model, tok, proc, enc, jump: bool, counter: dict | None = None, **kw):
    handle = model.register_forward_hook(lambda *_: counter.__setitem__("n", counter["n"] + 1)) if counter is not None else None
    try:
        return model.generate(**enc, logits_processor=[proc], pad_token_id=tok.pad_token_id,
                              **({"custom_generate": constrained.jump_forward} if jump else {}), **kw)
    finally:
        if handle is not None:
            handle.remove()


@pytest.mark.parametrize("name", ["kimi_k2", "minimax_m1", "hermes", "pythonic", "qwen3_coder", "deepseek_v32", "glm45", "glm47"])
def test_trained_model_writes_the_same_answers_in_fewer_passes(trained_models, name):
    import random

    model, tok = trained_models(name)
    d = registry.get(name)
    stops = eos_token_ids(tok, model)
    rng = random.Random(HELD_OUT_SEED)
    words = dialogues.vocabulary_words(tok)
    cases = [c for c in (dialogues.make_dialogue(rng, words, dropped_assistant=0.0) for _ in range(12)) if c.tools][:4]
    passes = {False: {"n": 0}, True: {"n": 0}}
    for case in cases:
        prompt, _ = dialogues.prompt_and_reference(d, case)
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        answers = {}
        for jump in (False, True):
            proc = ToolCallLogitsProcessor(tok, d, case.tools, "auto", vocab_size=model.config.vocab_size, eos_token_id=stops)
            out = _run(model, tok, proc, enc, jump, passes[jump], do_sample=False, max_new_tokens=160, eos_token_id=stops)
            new = out[0, enc["input_ids"].shape[1]:]
            assert len(new) <= 160
            r = proc.parse(new)
            assert r.violations == []
            answers[jump] = (r.content, [(c["function"]["name"], c["function"]["arguments"]) for c in r.tool_calls])
        assert answers[True] == answers[False], (name, case.messages[0])
    assert passes[True]["n"] < passes[False]["n"], passes


@pytest.mark.parametrize("name", ["kimi_k2", "minimax_m1", "pythonic", "hermes", "qwen3_coder", "plamo3", "openai", "deepseek_v4"])
def test_random_model_sampling_stays_valid_and_within_budget(demo_models, name):
    """The harshest user: gibberish wherever the grammar lets it, rows of a left-padded batch
    jumping by different amounts; every row still ends complete and valid within max_new_tokens."""
    model, tok = demo_models(name)
    d = registry.get(name)
    tools = tools_for(name)[:5]
    prompts = [render_prompt(d, prepare_history([{"role": "user", "content": t}], d), tools)
               for t in ("go", "a much longer request with more words in it", "mid length")]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    for choice, budget in (("required", 220), ("auto", 90)):
        torch.manual_seed(3)
        proc = ToolCallLogitsProcessor(tok, d, tools, choice, vocab_size=model.config.vocab_size)
        minimum = proc.minimum_tokens() or 0
        budget = max(budget, minimum)
        counter = {"n": 0}
        out = _run(model, tok, proc, enc, True, counter, do_sample=True, max_new_tokens=budget)
        generated = out[:, enc["input_ids"].shape[1]:]
        assert generated.shape[1] <= budget
        if choice == "required":  # under auto the random model writes text, where nothing is forced
            assert counter["n"] < generated.shape[1], "jumped tokens share forward passes"
        for row in range(len(prompts)):
            assert proc.states[row].is_completed(), (name, choice, row)
            r = proc.parse(generated[row], row)
            assert r.violations == [], (name, choice, r.violations)
            if choice == "required":
                assert r.tool_calls, tok.decode(generated[row])


def test_a_batch_gives_what_each_prompt_gives_alone(trained_models):
    model, tok = trained_models("kimi_k2")
    d = registry.get("kimi_k2")
    tools = tools_for("kimi_k2")[:4]
    prompts = [render_prompt(d, prepare_history([{"role": "user", "content": t}], d), tools)
               for t in ("What is the weather in Paris?", "Search the web for the stock market news of today, please", "Hi")]
    stops = eos_token_ids(tok, model)

    def answers(batch):
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        proc = ToolCallLogitsProcessor(tok, d, tools, "auto", vocab_size=model.config.vocab_size, eos_token_id=stops)
        out = _run(model, tok, proc, enc, True, do_sample=False, max_new_tokens=120, eos_token_id=stops)
        return [proc.parse(out[i, enc["input_ids"].shape[1]:], i).message() for i in range(len(batch))]

    together = answers(prompts)
    assert together == [answers([p])[0] for p in prompts]


def test_refusals(demo_models):
    model, tok = demo_models("hermes")
    enc = tok(["hi"], return_tensors="pt", add_special_tokens=False)
    proc = ToolCallLogitsProcessor(tok, "hermes", tools_for("hermes")[:1], "required", vocab_size=model.config.vocab_size)
    with pytest.raises(ValueError, match="exactly one ToolCallLogitsProcessor"):
        model.generate(**enc, custom_generate=constrained.jump_forward, max_new_tokens=40, pad_token_id=tok.pad_token_id)
    with pytest.raises(ValueError, match="output_scores"):
        _run(model, tok, proc, enc, True, max_new_tokens=40, output_scores=True, return_dict_in_generate=True)
    out = _run(model, tok, proc, enc, True, max_new_tokens=60, return_dict_in_generate=True)
    assert out.sequences.shape[0] == 1 and proc.parse(out.sequences[0, enc["input_ids"].shape[1]:]).tool_calls


def test_forced_text_stops_where_a_marker_token_may_come():
    """xgrammar's forced string leaves marker tokens out: after MiniMax-M1's last argument it runs
    on into `{"name"` of another call, though `</tool_calls>` may end the section there. A jump
    must stop after `}}\\n` (found with the trained model: jumping on wrote five calls for one)."""
    tok = demo.load_tokenizer("minimax_m1")
    tools = [{"type": "function", "function": {"name": "set_mode", "parameters": {
        "type": "object", "properties": {"mode": {"enum": ["on", "off"]}}, "required": ["mode"]}}}]
    proc = ToolCallLogitsProcessor(tok, "minimax_m1", tools, "required", max_new_tokens=200)
    proc.start(1)
    state = proc.states[0]
    assert state.accept_tokens(tok.encode('<tool_calls>\n{"name": "set_mode", "arguments": {"mode": "o', add_special_tokens=False))
    assert state.forced_text() == ""  # "on" or "off": nothing forced
    assert state.accept_tokens(tok.encode("n", add_special_tokens=False))
    assert state.forced_text() == '"}}\n'
    without_budget = GrammarState(proc.compiled, proc.stop_ids)
    assert without_budget.forced_text() == ""  # no closer that knows the markers: no jump
    text = tok.decode([t for t in state.jump(ForcedTokens(tok), 50)])
    assert text and '"}}\n'.startswith(text)
    assert parse('<tool_calls>\n{"name": "set_mode", "arguments": {"mode": "on"}}\n</tool_calls>', "minimax_m1", tools=tools).tool_calls


def test_a_forced_run_of_marker_tokens_is_fed_whole_and_a_text_tail_is_left_to_the_model():
    """GLM-4.7 forces `</arg_key><arg_value>` after a key: two marker tokens, which no text after
    them can merge with, so both are fed (leaving the last to the model cost one forward pass per
    argument). A forced text that ends in plain text keeps its last piece for the model."""
    tok = demo.load_tokenizer("glm47")
    feedable = ForcedTokens(tok)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    proc = ToolCallLogitsProcessor(tok, "glm47", tools, "required", max_new_tokens=200)
    proc.start(1)
    state = proc.states[0]
    assert state.accept_tokens(tok.encode("<tool_call>", add_special_tokens=False)) == 1
    forced = state.forced_text()
    assert forced.endswith("<arg_key>city</arg_key><arg_value>"), forced
    ids = state.jump(feedable, 50)
    assert tok.decode(ids) == forced  # every piece fed: the text ends on a marker token
    assert state.forced_text() == ""  # the value is the model's
    markers = tok.convert_tokens_to_ids(["</arg_key>", "<arg_value>"])
    assert feedable("x</arg_key><arg_value>")[-2:] == markers
    assert feedable("<arg_value>ab") == tok.encode("<arg_value>ab", add_special_tokens=False)[:-1]
    assert feedable("") == []
    plain = tok.encode('{"name": "', add_special_tokens=False)
    assert feedable('{"name": "') == plain[:-1]


def test_a_streamer_gets_every_token_in_order(demo_models):
    from transformers.generation.streamers import BaseStreamer

    class Collect(BaseStreamer):
        def __init__(self):
            self.chunks, self.ended = [], False

        def put(self, value):
            self.chunks.append(value.view(-1).tolist())

        def end(self):
            self.ended = True

    model, tok = demo_models("kimi_k2")
    enc = tok(["hi"], return_tensors="pt", add_special_tokens=False)
    proc = ToolCallLogitsProcessor(tok, "kimi_k2", tools_for("kimi_k2")[:2], "required", vocab_size=model.config.vocab_size)
    streamer = Collect()
    torch.manual_seed(0)
    out = _run(model, tok, proc, enc, True, streamer=streamer, do_sample=True, max_new_tokens=120)
    prompt, *rest = streamer.chunks
    assert prompt == enc["input_ids"][0].tolist() and streamer.ended
    assert any(len(c) > 1 for c in rest), "jumps arrive as several tokens at once"
    assert sum(rest, []) == out[0, enc["input_ids"].shape[1]:].tolist()
