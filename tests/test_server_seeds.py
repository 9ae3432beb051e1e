"""The seed client loops (tests/seed_clients/, the seeds' own code with only the endpoint and model
set from the environment) run to completion against the server, as subprocesses.

The random demo model gets a first-step bias (`constrained.demo.server_nudge`): its first token either
opens the tool section or stops, as a real model's would; the grammar does the rest.
"""

from __future__ import annotations

import pytest
from helpers import run_client

from constrained import demo
from constrained.server.engine import EngineConfig
from constrained.server.testing import DemoServer, demo_served


@pytest.fixture(scope="module")
def kimi():
    tok = demo_served("kimi_k2").tokenizer
    # trigger a little above EOS: with this server seed both loops go through several tool turns
    s = DemoServer("kimi_k2", first_token_bias=demo.server_nudge(tok, "kimi_k2", trigger=36.3)[1], engine_config=EngineConfig(default_seed=3))
    yield s
    s.close()


def counters(server) -> tuple[float, float]:
    """(chat requests answered 200, tool calls returned) so far."""
    import httpx

    values = {}
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        for key in ('constrained_http_requests_total{path="/v1/chat/completions",status="200"}', "constrained_tool_calls_total"):
            if line.startswith(key + " "):
                values[key] = float(line.split()[-1])
    return tuple(values.get(k, 0.0) for k in ('constrained_http_requests_total{path="/v1/chat/completions",status="200"}', "constrained_tool_calls_total"))


def test_seed_001_kimi_non_streaming(kimi):
    requests0, calls0 = counters(kimi)
    out = run_client("kimi_001_nonstreaming.py", {"CONSTRAINED_ENDPOINT": kimi.url + "/v1", "CONSTRAINED_MODEL": kimi.model})
    requests, calls = counters(kimi)
    assert out.count("tool_result {'weather': 'Sunny'}") == calls - calls0 >= 2  # the loop went through tool calls
    assert requests - requests0 >= 2  # several turns, the last one not "tool_calls"
    assert out.rstrip().endswith("-" * 100 + "\nNone")  # the last turn: no text (EOS right away)


def test_seed_001_kimi_streaming(kimi):
    requests0, calls0 = counters(kimi)
    run_client("kimi_001_streaming.py", {"CONSTRAINED_ENDPOINT": kimi.url + "/v1", "CONSTRAINED_MODEL": kimi.model})
    requests, calls = counters(kimi)
    assert requests - requests0 >= 2 and calls - calls0 >= 1


def test_seed_003_minimax(tmp_path):
    tok = demo_served("minimax_m1").tokenizer
    s = DemoServer("minimax_m1", first_token_bias=demo.server_nudge(tok, "minimax_m1", eos_first=None)[1])
    try:
        out = run_client("minimax_003_openai.py", {"CONSTRAINED_ENDPOINT": s.url + "/v1"})
    finally:
        s.close()
    assert "Function called: get_weather" in out
    assert "Result: Getting the weather for" in out


CHAT_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nYou are provided with these tools:\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}<|im_end|>\n{% endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content is string %}{{ m.content }}{% endif %}"
    "{% if m.tool_calls %}<|tool_calls_section_begin|>{% for c in m.tool_calls %}<|tool_call_begin|>{{ c.id }}<|tool_call_argument_begin|>"
    "{{ c.function.arguments | tojson }}<|tool_call_end|>{% endfor %}<|tool_calls_section_end|>{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_seed_001_manual_parsing_against_a_checkpoint(tmp_path):
    """A server over a local checkpoint (`--model DIR`: dialect detected from the tokenizer, prompts
    through the checkpoint's own chat template); the seed's manual-parsing loop loads the
    checkpoint's tokenizer and posts raw prompts to /v1/completions."""
    import time

    from openai import OpenAI

    from constrained import demo
    from constrained.server.app import build_state, create_app
    from constrained.server.testing import BackgroundServer

    t0 = time.time()
    model, tok = demo.load_random("kimi_k2", hidden_size=16, layers=1)  # a smaller random model: faster to save, load and run
    ckpt = tmp_path / "kimi-demo"
    model.save_pretrained(ckpt)
    tok.chat_template = CHAT_TEMPLATE
    try:
        tok.save_pretrained(ckpt)
    finally:
        tok.chat_template = None  # the tokenizer object is shared (lru_cache)
    t1 = time.time()
    state = build_state(str(ckpt), "auto", engine_config=EngineConfig(default_seed=0, torch_threads=1), device="cpu")
    assert state.dialect.name == "kimi_k2" and state.served.use_chat_template
    server = BackgroundServer(create_app(state)).start()
    url = server.url
    try:
        t2 = time.time()
        out = run_client("kimi_001_manual.py", {"CONSTRAINED_ENDPOINT": url + "/v1", "CONSTRAINED_MODEL": str(ckpt)})
        print(f"checkpoint {t1 - t0:.1f}s, server start {t2 - t1:.1f}s, seed client {time.time() - t2:.1f}s")
        assert "-" * 100 in out
        client = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        assert client.models.list().data[0].id == str(ckpt)
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}}, "required": ["city"]}}}]
        messages = [{"role": "user", "content": "Weather?"},
                    {"role": "assistant", "content": None, "tool_calls": [{"id": "x1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
                    {"role": "tool", "tool_call_id": "x1", "content": "cold"}]
        r = client.chat.completions.create(model=str(ckpt), messages=messages, tools=tools, tool_choice="required", max_tokens=40)
        assert r.choices[0].finish_reason == "tool_calls"
        assert r.choices[0].message.tool_calls[0].id == "functions.get_weather:1"
        assert r.choices[0].message.tool_calls[0].function.arguments in ('{"city": "Paris"}', '{"city": "Oslo"}')
    finally:
        server.stop()
        state.close()


def test_dialect_detection_and_cli_errors(caplog):
    from constrained import demo
    from constrained.server.loader import LoadError, detect_dialect, resolve_dialect

    # the demo tokenizers have no chat template: a guess from their special tokens, with a warning
    with pytest.raises(LoadError, match="fit several dialects .*deepseek_v3.*kimi_k2"):
        detect_dialect(demo.load_tokenizer("kimi_k2"))  # the demo vocabulary is DeepSeek's: it has DeepSeek's markers too
    with pytest.raises(LoadError, match="--dialect"):
        detect_dialect(demo.load_tokenizer("pythonic"))  # nothing to detect a Python call list by
    assert "has no chat template" in caplog.text
    with pytest.raises(LoadError, match="known dialects"):
        resolve_dialect("klingon")
    assert resolve_dialect("auto").name == "kimi_k2"  # the demo model's default

def test_cli_rejects_an_unknown_dialect(capsys):
    from constrained.cli import main

    assert main(["serve", "--dialect", "klingon", "--port", "1"]) == 1  # a request problem (cli.main), not a usage error
    assert "known dialects" in capsys.readouterr().err
