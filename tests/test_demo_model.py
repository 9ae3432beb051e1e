"""The trained demo model (constrained/demo_model/, scripts/train_demo.py) behind a real server:
the seeds' client loops, unmodified but for the user's request, complete their round trips.

Each loop runs for 10 requests (the seed's own and nine others, two phrased unlike any training
dialogue), in one subprocess (tests/seed_clients/varied.py). A round trip: the model calls the tool,
the loop sends the result, and the model answers in text, ending with finish_reason "stop".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import CLIENTS

from constrained import demo
from constrained.server.engine import EngineConfig
from constrained.server.testing import DemoServer

KIMI_REQUESTS = [
    "What's the weather like in Beijing today? Let's check using the tool.",  # the seed's own
    "What's the weather like in Shanghai today? Let's check using the tool.",
    "How is the weather in Paris?",
    "Is it raining in London right now?",
    "Tell me the current weather in Tokyo.",
    "Check the weather for Berlin, please.",
    "Will I need an umbrella in Seattle?",
    "weather in Sydney",
    "Could you find out today's weather in Toronto?",  # phrasings no training dialogue has
    "I am flying to Madrid tomorrow, what is the weather there?",
]
MINIMAX_REQUESTS = [
    "What's the weather like in San Francisco? use celsius.",  # the seed's own
    "What's the weather like in Boston? use fahrenheit.",
    "Weather in Chicago in celsius, please.",
    "How warm is it in Lisbon? Answer in celsius.",
    "Give me the fahrenheit temperature in Miami.",
    "What's the weather like in Hong Kong? use celsius.",
    "Weather in Oslo in fahrenheit, please.",
    "How warm is it in Cairo? Answer in fahrenheit.",
    "Is it cold in Helsinki today? Tell me in celsius.",  # phrasings no training dialogue has
    "I need the temperature of Denver in fahrenheit.",
]
AT_LEAST = 8


def run_varied(script: str, requests: list[str], env: dict, timeout: float = 900) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, str(CLIENTS / "varied.py"), script], cwd=CLIENTS, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(CLIENTS), "CONSTRAINED_REQUESTS": json.dumps(requests), **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["request"] for r in rows] == requests
    return rows


def round_trips(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["error"] is None and r["tool_results"] >= 1 and r["finish_reason"] == "stop" and (r["final_text"] or "").strip()]


@pytest.fixture(scope="module")
def kimi():
    s = DemoServer("kimi_k2", demo_model="trained", engine_config=EngineConfig(default_seed=0))
    yield s
    s.close()


@pytest.mark.parametrize("script", ["kimi_001_nonstreaming.py", "kimi_001_streaming.py"])
def test_kimi_chat_loops_round_trip(kimi, script):
    rows = run_varied(script, KIMI_REQUESTS, {"CONSTRAINED_ENDPOINT": kimi.url + "/v1", "CONSTRAINED_MODEL": kimi.model})
    done = round_trips(rows)
    assert len(done) >= AT_LEAST, json.dumps(rows, indent=1)[-6000:]


def test_kimi_manual_parsing_loop_round_trips(kimi):
    """The seed loads the model's tokenizer (AutoTokenizer.from_pretrained(model_name)): the trained
    demo's checkpoint, which the server also accepts as a model id; raw prompts, no grammar."""
    checkpoint = str(demo.trained_checkpoint("kimi_k2"))
    assert checkpoint in kimi.state.names
    rows = run_varied("kimi_001_manual.py", KIMI_REQUESTS, {"CONSTRAINED_ENDPOINT": kimi.url + "/v1", "CONSTRAINED_MODEL": checkpoint})
    done = round_trips(rows)
    assert len(done) >= AT_LEAST, json.dumps(rows, indent=1)[-6000:]


def test_minimax_openai_example_calls_the_tool():
    s = DemoServer("minimax_m1", demo_model="trained", engine_config=EngineConfig(default_seed=0))
    try:
        rows = run_varied("minimax_003_openai.py", MINIMAX_REQUESTS, {"CONSTRAINED_ENDPOINT": s.url + "/v1"})
    finally:
        s.close()
    done = [r for r in rows if r["error"] is None and "Result: Getting the weather for" in r["stdout"]]
    assert len(done) >= AT_LEAST, json.dumps(rows, indent=1)[-6000:]


def test_the_committed_weights_are_the_recorded_training():
    record = json.loads((demo.TRAINED_DIR / "training.json").read_text())
    from constrained import demo_training

    assert demo_training.weights_hash(demo.TRAINED_DIR) == record["sha256"]
    assert (demo.TRAINED_DIR / "model.safetensors").stat().st_size < 25 * 2**20
    assert record["config"]["hidden_size"] // record["config"]["heads"] >= 32  # vLLM's CPU attention


def test_the_checkpoint_is_a_plain_hugging_face_one_with_our_template(tmp_path):
    """What clients (and vLLM) load: AutoTokenizer/AutoModel, the chat template renders our prompt,
    and --dialect auto detects the dialect from it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from constrained.chat import prepare_history, render_prompt
    from constrained.detect import detect
    from constrained.types import as_tools

    for name in ("kimi_k2", "minimax_m1"):
        path = demo.trained_checkpoint(name, tmp_path / name)
        tok = AutoTokenizer.from_pretrained(path)
        d = detect(tok).dialect
        assert d.name == name
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
        messages = [{"role": "user", "content": "Weather in Oslo?"}]
        assert tok.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True) == \
            render_prompt(d, prepare_history(messages, d), as_tools(tools))
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.vocab_size == len(tok) and tok.eos_token == "<end_of_sentence>"  # M1's end of turn
    assert tok.convert_tokens_to_ids("<end_of_sentence>") in model.generation_config.eos_token_id


def test_bench_part_scores_the_trained_model():
    from constrained import dialect as registry
    from constrained.benchmarks import trained

    res = trained.run(registry.get("hermes"), 4)
    assert res["free"]["n"] == res["constrained"]["n"] == 4
    assert res["constrained"]["valid"] == 1.0  # under the grammar every output ends and validates
