"""vLLM (CPU build) with `--tool-call-parser constrained_minimax_m1 --reasoning-parser
constrained_minimax_m1` on the MiniMax-M1 demo checkpoint: the seed's OpenAI loop unmodified, and
tool_choice required / named / auto over hidden-style tool sets. One vLLM start for the module."""

from __future__ import annotations

import pytest
from helpers import run_client
from vllm_support import ask_many, check, choice, start_server

DIALECT = "minimax_m1"
N = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory, DIALECT)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tokenizer(server):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(server.checkpoint)


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=300)


def test_seed_003_minimax(server):
    out = run_client("minimax_003_openai.py", {"CONSTRAINED_ENDPOINT": server.url + "/v1"})
    assert "Function called: get_weather" in out
    assert "Result: Getting the weather for" in out  # get_weather(**json.loads(arguments)): both required arguments, a valid unit


@pytest.mark.parametrize("kind", ["required", "named", "auto"])
def test_tool_choice_over_hidden_style_tools(client, tokenizer, kind):
    replies = ask_many(client, N, DIALECT, choice(kind), max_tokens=256) + ask_many(client, N // 2, DIALECT, choice(kind), stream=True, max_tokens=256)
    assert check(tokenizer, DIALECT, replies)["calls"] >= N
