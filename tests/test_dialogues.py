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
        stop = next(t for t in d.chat.stop_tokens if reference.endswith(t))  # the turn ends with the family's end of turn
        r = parse(reference[:-len(stop)], d, tools=dialogue.tools or None)
        assert not r.violations
        got = [(c["function"]["name"], c["function"]["arguments"]) for c in r.tool_calls]
        assert [(n, json.loads(a)) for n, a in got] == [(c["name"], c["arguments"]) for c in dialogue.calls]
        if dialogue.kind != "call":  # the text itself (gpt-oss writes it in a final-channel message)
            said = next(m["content"] for m in dialogue.messages if m["role"] == "assistant")
            assert r.content.strip() == said.strip()


def _call_dialogue(words):
    dialogue = dialogues.make_dialogue(random.Random(3), words, dropped_assistant=0.0)
    while dialogue.kind != "call":
        dialogue = dialogues.make_dialogue(random.Random(len(dialogue.messages) + 7), words, dropped_assistant=0.0)
    return dialogue


@pytest.mark.parametrize("name, call_stop, answer_stop, result", [
    ("kimi_k2", "<|im_end|>", "<|im_end|>", "## Return of"), ("glm45", "<|observation|>", "<|user|>", "<tool_response>")])
def test_what_the_assistant_writes_is_exactly_its_turns_and_their_ends(words, name, call_stop, answer_stop, result):
    """Each assistant turn and the token that ends it; GLM has no end-of-turn token, its model ends
    a turn with the next message's role marker (`<|observation|>` before results, `<|user|>` after
    an answer), so that marker is what it learns."""
    d = registry.get(name)
    dialogue = _call_dialogue(words)
    parts = dialogues.segments(d, dialogue)
    written = [text for text, mine in parts if mine]
    assert len(written) == 2  # the call, then the answer after the result
    assert written[0].startswith(d.trigger) and written[0].endswith(call_stop)
    assert written[1].strip() == dialogue.messages[-1]["content"] + answer_stop
    assert result in dialogues.render(d, dialogue) and not any(result in w for w in written)  # results are read, not learned
    assert "".join(text for text, _ in parts) == dialogues.render(d, dialogue)


def test_results_without_the_call_message_use_ids_that_name_the_call(words):
    rng = random.Random(11)
    dialogue = next(x for x in (dialogues.make_dialogue(rng, words, dropped_assistant=1.0) for _ in range(50)) if x.kind == "call")
    kimi = dialogues.render(registry.get("kimi_k2"), dialogue)
    assert "## Return of functions." in kimi and kimi.count("<|im_assistant|>assistant<|im_middle|>") == 1
    hermes = dialogues.render(registry.get("hermes"), dialogue)  # random ids cannot name a call: kept
    assert hermes.count("<|im_start|>assistant") == 2


def test_labels_mark_only_what_the_assistant_writes():
    tok = demo.marker_tokenizer(demo.all_markers(), "t")
    config = training.TrainingConfig(seed=5)
    ids, labels = next(training.examples(tok, config, ["minimax_m1"]))
    learned = tok.decode([ids[i + 1] for i, y in enumerate(labels) if y != -100])
    assert "<tool_calls>" in learned or "<end_of_sentence>" in learned
    assert "You are provided with these tools" not in learned and "<beginning_of_sentence>user" not in learned
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
