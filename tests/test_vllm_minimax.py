"""vLLM (CPU build) with `--tool-call-parser constrained_minimax_m1 --reasoning-parser
constrained_minimax_m1` on the MiniMax-M1 demo checkpoint: the seed's OpenAI loop unmodified, and
tool_choice required / named / auto over hidden-style tool sets. One vLLM start for the module."""

from __future__ import annotations

import pytest
from helpers import run_client
from vllm_support import ask_many, check, choice, server_fixtures

DIALECT = "minimax_m1"
N = 20


server, tokenizer, client = server_fixtures(DIALECT)


def test_seed_003_minimax(server):
    out = run_client("minimax_003_openai.py", {"CONSTRAINED_ENDPOINT": server.url + "/v1"})
    assert "Function called: get_weather" in out
    assert "Result: Getting the weather for" in out  # get_weather(**json.loads(arguments)): both required arguments, a valid unit


@pytest.mark.parametrize("kind", ["required", "named", "auto"])
def test_tool_choice_over_hidden_style_tools(client, tokenizer, kind):
    replies = ask_many(client, N, DIALECT, choice(kind), max_tokens=256) + ask_many(client, N // 2, DIALECT, choice(kind), stream=True, max_tokens=256)
    assert check(tokenizer, DIALECT, replies)["calls"] >= N
