"""vLLM (CPU build) started by `constrained serve --engine vllm --dialect minimax_m1 --demo-nudge
--lazy-from 0` (so `--tool-call-parser constrained_minimax_m1 --reasoning-parser
constrained_minimax_m1`, and every grammar of ours served in vLLM's engine by llguidance's lazy
masks, the route of large schemas, `constrained.lazy`) on the MiniMax-M1 demo checkpoint: the
seed's OpenAI loop unmodified, and tool_choice required / named / auto over hidden-style tool sets,
each call in our grammar, parsed and valid. One vLLM start for the module."""

from __future__ import annotations

import re

import pytest
from helpers import run_client
from vllm_support import ask_many, check, choice, server_fixtures

DIALECT = "minimax_m1"
N = 20


server, tokenizer, client = server_fixtures(DIALECT, via_cli=True, cli_args=["--lazy-from", "0"])


def test_the_engine_serves_our_grammars_lazily(server, client):
    ask_many(client, 2, DIALECT, choice("required"), max_tokens=64)
    log = server.log_path.read_text(errors="replace")
    assert re.search(r"serving a \d+-character minimax_m1 grammar with llguidance's lazy masks", log), log[-3000:]


def test_seed_003_minimax(server):
    out = run_client("minimax_003_openai.py", {"CONSTRAINED_ENDPOINT": server.url + "/v1"})
    assert "Function called: get_weather" in out
    assert "Result: Getting the weather for" in out  # get_weather(**json.loads(arguments)): both required arguments, a valid unit


@pytest.mark.parametrize("kind", ["required", "named", "auto"])
def test_tool_choice_over_hidden_style_tools(client, tokenizer, kind):
    replies = ask_many(client, N, DIALECT, choice(kind), max_tokens=256) + ask_many(client, N // 2, DIALECT, choice(kind), stream=True, max_tokens=256)
    assert check(tokenizer, DIALECT, replies)["calls"] >= N
