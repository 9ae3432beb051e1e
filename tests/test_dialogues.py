"""The synthetic dialogues the demo model learns from (constrained.dialogues), and its training's
reproducibility (constrained.demo_training)."""

from __future__ import annotations

import json
import random

import pytest

from constrained import demo, dialogues, parse
from constrained import demo_training as training
from constrained import dialect as registry


@pytest.fixture(scope="module")
def words():
    return dialogues.vocabulary_words(demo.load_tokenizer("kimi_k2"))


@pytest.mark.parametrize("name", registry.names())
def test_reference_turns_parse_to_the_reference_calls(name, words):
    """What the model learns to write is what our parser reads back, in every dialect."""
    d = registry.get(name)
    rng = random.Random(name)
    for _ in range(12):
        dialogue = dialogues.make_dialogue(rng, words)
        _, reference = dialogues.prompt_and_reference(d, dialogue)
        assert reference.endswith(dialogues.TURN_END)
        r = parse(reference[:-len(dialogues.TURN_END)], d, tools=dialogue.tools or None)
        assert not r.violations
        got = [(c["function"]["name"], c["function"]["arguments"]) for c in r.tool_calls]
        assert [(n, json.loads(a)) for n, a in got] == [(c["name"], c["arguments"]) for c in dialogue.calls]
        if dialogue.kind != "call":  # the text itself (gpt-oss writes it in a final-channel message)
            said = next(m["content"] for m in dialogue.messages if m["role"] == "assistant")
            assert r.content.strip() == said.strip()


def test_assistant_spans_cover_exactly_the_assistant_turns(words):
    d = registry.get("kimi_k2")
    dialogue = dialogues.make_dialogue(random.Random(3), words, dropped_assistant=0.0)
    while dialogue.kind != "call":
        dialogue = dialogues.make_dialogue(random.Random(len(dialogue.messages) + 7), words, dropped_assistant=0.0)
    text = dialogues.render(d, dialogue)
    spans = dialogues.assistant_spans(text)
    assert len(spans) == 2  # the call, then the answer after the result
    first = text[spans[0][0]:spans[0][1]]
    assert first.startswith("<|tool_calls_section_begin|>") and first.endswith("<|im_end|>")
    assert text[spans[1][0]:spans[1][1]] == dialogue.messages[-1]["content"] + "<|im_end|>"
    assert "tool result:" not in "".join(text[a:b] for a, b in spans)  # results are read, not learned


def test_results_without_the_call_message_use_ids_that_name_the_call(words):
    rng = random.Random(11)
    dialogue = next(x for x in (dialogues.make_dialogue(rng, words, dropped_assistant=1.0) for _ in range(50)) if x.kind == "call")
    kimi = dialogues.render(registry.get("kimi_k2"), dialogue)
    assert "tool call id: functions." in kimi and kimi.count("<|im_start|>assistant") == 1
    hermes = dialogues.render(registry.get("hermes"), dialogue)  # random ids cannot name a call: kept
    assert hermes.count("<|im_start|>assistant") == 2


def test_labels_mark_only_what_the_assistant_writes():
    tok = demo.marker_tokenizer(demo.all_markers(), "t")
    config = training.TrainingConfig(seed=5)
    ids, labels = next(training.examples(tok, config, ["minimax_m1"]))
    learned = tok.decode([ids[i + 1] for i, y in enumerate(labels) if y != -100])
    assert "<tool_calls>" in learned or "<|im_end|>" in learned
    assert "You are provided with these tools" not in learned and "<|im_start|>user" not in learned
    assert all(y == ids[i + 1] for i, y in enumerate(labels) if y != -100)


def test_training_is_reproducible(tmp_path):
    """Same seed and steps: the same weights, byte for byte (what scripts/train_demo.py --check
    checks at full length)."""
    tok = demo.marker_tokenizer(demo.all_markers(), "t")
    config = training.TrainingConfig(seed=1, steps=2, batch=2, max_tokens=400, threads=1)
    hashes = [training.save(training.train(tok, config, ["kimi_k2", "hermes"]), tok, config, demo.all_markers(), tmp_path / str(k))
              for k in range(2)]
    assert hashes[0] == hashes[1]
    other = training.TrainingConfig(seed=2, steps=2, batch=2, max_tokens=400, threads=1)
    assert training.save(training.train(tok, other, ["kimi_k2", "hermes"]), tok, other, demo.all_markers(), tmp_path / "o") != hashes[0]
