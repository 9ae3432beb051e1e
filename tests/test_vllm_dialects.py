"""Every other registered dialect inside vLLM (CPU build), one server for all of them: the parser
`constrained` takes the dialect per request (`vllm_xargs.constrained_dialect`), on a demo
checkpoint whose tokenizer has every dialect's markers as special tokens. The same classes serve
`--tool-call-parser constrained_<dialect>` (test_vllm_plugin.py checks each name resolves to
them and builds the same grammar); Kimi-K2 and MiniMax-M1 have modules of their own.

tool_choice required / named / auto on N requests each (N = CONSTRAINED_VLLM_REQUESTS, default
20), half as many again streamed, at max_tokens 128: every reply ended on its own within it (the
budget processor), every call in our grammar (replayed through our matcher), parsed and valid,
streamed deltas joining to the calls.
"""

from __future__ import annotations

import os

import pytest
from vllm_support import ask_many, check, choice, server_fixtures, tool_sets

from constrained import dialect as registry

OWN_MODULES = ("kimi_k2", "minimax_m1")  # test_vllm_kimi.py, test_vllm_minimax.py
# End to end: the random demo model writes until it is stopped, and the budget processor
# (vllm/budget.py) closes each output within max_tokens, so every reply is complete. CI runs every
# dialect (117 tests, ~14 min); CONSTRAINED_VLLM_DIALECTS=a,b runs those. All passed on 2026-12-02
# once grammars with Token(...) stopped sharing xgrammar 0.2.8's cross-grammar rule cache, whose
# hash leaves out token ids: longcat's and mistral's named calls had been given hermes' and
# granite's masks (see constrained/compiler.py).
_ONLY = [n for n in os.environ.get("CONSTRAINED_VLLM_DIALECTS", "all").split(",") if n]
DIALECTS = [n for n in registry.names() if n not in OWN_MODULES and (_ONLY == ["all"] or n in _ONLY)]
N = int(os.environ.get("CONSTRAINED_VLLM_REQUESTS", "20"))
# The random demo model writes until the budget closes its output: the budget sets the test's time.
# Twice the shortest required call, where that is longer (PLaMo's markers are text: ~140 tokens).
MAX_TOKENS = 128


def _max_tokens(tokenizer, dialect: str) -> int:
    from constrained import ToolCallLogitsProcessor

    shortest = ToolCallLogitsProcessor(tokenizer, dialect, tool_sets(dialect, 1)[0], "required").minimum_tokens()
    assert shortest is not None
    return max(MAX_TOKENS, 2 * shortest)


server, tokenizer, client = server_fixtures(DIALECTS[0], parser="constrained", extra_dialects=registry.names())


@pytest.mark.parametrize("kind", ["required", "named", "auto"])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_tool_choice_over_hidden_style_tools(client, tokenizer, dialect, kind):
    max_tokens = _max_tokens(tokenizer, dialect)
    replies = ask_many(client, N, dialect, choice(kind), per_request_dialect=True, max_tokens=max_tokens)
    replies += ask_many(client, N // 2, dialect, choice(kind), stream=True, per_request_dialect=True, max_tokens=max_tokens)
    counts = check(tokenizer, dialect, replies)  # every output complete within max_tokens, every call valid
    if kind != "auto":  # auto may answer in text: the demo nudge opens a section in one token only where the trigger is one token
        assert counts["calls"] >= N
