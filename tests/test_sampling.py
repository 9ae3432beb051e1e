"""The guarantee, measured on the harshest user: a random model sampling at temperature 1.

For every registered dialect, outputs of the demo model under the grammar, across tool_choice
required, named and auto and parallel_tool_calls false, each row its own request (tools drawn from
the 32-schema corpus, first_index drawn too): every finished output parses, every call validates
with jsonschema, the mode's promise holds (a call; exactly that one tool; one call), the calls
re-render to text the grammar accepts and that parses back to the same calls, and the streaming
parser fed the text token by token gives the same result as the whole-text parse.

One round is one `generate` call per dialect with CONSTRAINED_SAMPLES_PER_MODE rows per mode
(default 3: 12 outputs per dialect, ~500 in all, which keeps the suite's time reasonable);
CONSTRAINED_SAMPLE_ROUNDS (default 1) runs more rounds with other seeds and tool draws. The issue's
bar of 200 outputs per dialect: CONSTRAINED_SAMPLES_PER_MODE=18 CONSTRAINED_SAMPLE_ROUNDS=4 (288
sampled; on 2026-12-02, 234-279 of them finished within the token limit per dialect, every one
parsed and valid). Run it one dialect group at a time on 24 GiB: the session's models and grammar
caches of all 41 dialects at this size outgrow the memory.
"""

from __future__ import annotations

import os
import random

import pytest
from corpus import tools_for
from helpers import Row, check_roundtrip, check_stream_matches, sample_rows

from constrained import dialect as registry
from constrained import parse

ROUNDS = int(os.environ.get("CONSTRAINED_SAMPLE_ROUNDS", "1"))
PER_MODE = int(os.environ.get("CONSTRAINED_SAMPLES_PER_MODE", "3"))
MODES = ["required", "named", "auto", "single"]  # single: required with parallel_tool_calls false


def _row(mode, corpus, rng):
    tools = rng.sample(corpus, 4)
    choice = {"type": "function", "function": {"name": tools[0]["function"]["name"]}} if mode == "named" else (
        "required" if mode == "single" else mode)
    return Row(tools, choice, parallel=mode != "single", first_index=rng.randrange(0, 5))


@pytest.mark.parametrize("dialect", registry.names())
def test_random_model_outputs_parse_and_validate(demo_models, dialect):
    model, tok = demo_models(dialect)
    corpus = tools_for(dialect)
    d = registry.get(dialect)
    finished = {m: 0 for m in MODES}
    calls = {m: 0 for m in MODES}
    r = 0
    # ROUNDS rounds, and up to two more while a mode has no finished output (long tools drawn for
    # every row of a mode, cut off by the token budget): each mode's promise is checked on something
    while r < ROUNDS or (r < ROUNDS + 2 and not all(finished.values())):
        rng = random.Random(f"{dialect}-{r}")
        r += 1
        modes = [m for m in MODES for _ in range(PER_MODE)]
        rows = [_row(m, corpus, rng) for m in modes]
        for mode, row, (text, done) in zip(modes, rows, sample_rows(model, tok, dialect, rows, seed=r - 1)):
            result = parse(text, dialect, tools=row.tools, first_index=row.first_index)  # never raises
            if not done:
                continue  # cut off by max_new_tokens: not a finished output
            finished[mode] += 1
            assert result.violations == [], (text, result.violations)
            if mode != "auto":
                assert result.tool_calls, text
            if mode == "named":
                assert {c["function"]["name"] for c in result.tool_calls} == {row.tool_choice["function"]["name"]}
                assert len(result.tool_calls) == 1
            if mode == "single" or d.max_calls == 1:
                assert len(result.tool_calls) <= 1, text
            if d.call_id.startswith("functions."):
                assert [c["id"] for c in result.tool_calls] == [
                    f"functions.{c['function']['name']}:{row.first_index + i}" for i, c in enumerate(result.tool_calls)
                ]
            calls[mode] += len(result.tool_calls)
            check_stream_matches(dialect, tok, text, result, row.first_index, row.tools)
            if result.tool_calls:
                check_roundtrip(dialect, tok, row.tools, result.tool_calls, row.first_index)
    print(f"\n{dialect}: {sum(finished.values())} finished outputs of {r * PER_MODE * len(MODES)} sampled, all parsed and valid "
          f"({finished}), {sum(calls.values())} calls")
    assert sum(finished.values()) >= r * PER_MODE * len(MODES) // 2, f"only {finished} outputs finished"
    assert all(finished.values()), f"a mode with no finished output: {finished}"
    # required/named: every finished output has a call; auto: the section grammar is exercised in
    # auto mode as well. How often the random model opens it there depends on how many tokens the
    # dialect's trigger takes (the nudge favours its first): at 288 samples, from a few percent
    # (olmo3, phi4_mini_json, plamo3) to most outputs, so the check is that it happens at all
    assert calls["auto"] >= 1 or finished["auto"] < 8, (calls, finished)
