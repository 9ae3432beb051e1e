"""Smoke run of `constrained bench` (tiny preset, one dialect): the files are written and every
finished constrained output parses and validates."""

from __future__ import annotations

import json

import pytest

from constrained.cli import build_parser


def test_bench_tiny_writes_results(tmp_path):
    from constrained.benchmarks.cli import run
    from constrained.benchmarks.common import make_config

    cfg = make_config("tiny", dialects=["kimi_k2"], out=str(tmp_path), parts=["validity", "mask", "generate", "compile"])
    res = run(cfg, progress=False)
    json_path, md_path = tmp_path / "bench_cpu.json", tmp_path / "bench_cpu.md"
    assert json_path.exists() and md_path.exists()
    data = json.loads(json_path.read_text())
    for key in ("platform", "cpu_model", "cpu_count", "torch", "xgrammar", "transformers", "date"):
        assert data["machine"][key]
    v = data["validity"]["kimi_k2"]
    for part in ("model", "drift"):
        con = v[part]["constrained"]
        assert con["n"] > 0 and con["finished"] == 1.0, v[part]  # the budget closes every output
        assert con["valid"] == 1.0, v[part]  # all outputs, budget-closed included
        assert 0.0 <= con["budget_closed"] <= 1.0
    # the drift model knows the answer: under the grammar every output is a valid call
    assert v["drift"]["constrained"]["valid"] == 1.0
    assert v["drift"]["constrained"]["exact"] >= v["drift"]["free"]["exact"]
    assert v["model"]["free"]["valid"] == 0.0  # a random model writes no valid call by itself
    g = data["generate"]["kimi_k2"]["batch1"]
    assert g["same_tokens_in_every_mode"] and g["engines"]["ours"]["ratio_median"] > 0
    assert g["engines"]["ours_no_budget"]["ratio_median"] > 0
    assert any(t["target"].startswith("token-budget check") for t in data["targets"])
    assert data["mask_fill"]["kimi_k2"]["single"]["n"] > 0
    assert data["compile"]["kimi_k2"]["sizes"]["1"]["cold_ms"] > 0
    first = data["compile"]["kimi_k2"]["first_grammar"]
    assert first["cold_ms"] > 0 and first["warm_up_ms"] > 0 and first["after_warm_up_ms"] > 0
    assert "first grammar after warm-up" in md_path.read_text()
    assert "| kimi_k2 |" in md_path.read_text()
    assert any(t["target"].startswith("all constrained outputs") and t["met"] for t in data["targets"])
    pytest.importorskip("matplotlib")
    assert res["plots"] and all((tmp_path / p).exists() for p in res["plots"])


def test_bench_command_is_registered():
    args = build_parser().parse_args(["bench", "--quick", "--dialects", "hermes", "--out", "x"])
    assert args.command == "bench" and args.preset == "quick" and args.dialects == ["hermes"] and callable(args.func)


def test_gpu_preset_runs_a_real_shape_with_random_weights_against_the_gpu_targets():
    """`constrained bench --gpu`: an 8B Llama shape over the demo vocabulary, batch 1 and 64, and
    the GPU goals (≤ 1 % at batch 1, ≤ 3 % at batch 64) instead of the CPU's."""
    from constrained import demo
    from constrained.benchmarks.common import ModelSource, make_config
    from constrained.benchmarks.report import evaluate_targets

    args = build_parser().parse_args(["bench", "--gpu"])
    cfg = make_config(args.preset)
    assert (cfg.device, cfg.model, cfg.gen_batches) == ("cuda", "random:llama-8b", (1, 64))
    source = ModelSource(cfg.model, cfg.device)
    assert source.shape == "llama-8b" and source.is_demo and source.checkpoint is None
    assert demo.MODEL_SHAPES["llama-8b"]["num_hidden_layers"] == 32
    with pytest.raises(ValueError, match="unknown model shape 'llama-9b'"):
        demo.load_random("hermes", shape="llama-9b")

    def result(device: str, ratios: dict) -> dict:
        engines = lambda r: {"free": {"ratio_median": 1.0}, "ours": {"ratio_median": r}}  # noqa: E731
        return {"machine": {"device": device}, "generate": {"hermes": {f"batch{b}": {"engines": engines(r)} for b, r in ratios.items()}}}

    goals = {t["target"]: (t["goal"], t["met"]) for t in evaluate_targets(result("cuda", {1: 1.008, 64: 1.04}))}
    assert goals["constrained/free time per token, batch1 (hermes)"] == ("≤ 1.01", True)
    assert goals["constrained/free time per token, batch64 (hermes)"] == ("≤ 1.03", False)
    overhead = next(v for k, v in goals.items() if k.startswith("GPU overhead"))
    assert overhead == ("≤ 1 % at batch 1, ≤ 3 % at batch 64", False)
    cpu = {t["target"]: (t["goal"], t["met"]) for t in evaluate_targets(result("cpu", {1: 1.015, 16: 1.04}))}
    assert cpu["constrained/free time per token, batch1 (hermes)"] == ("≤ 1.02", True)
    assert cpu["constrained/free time per token, batch16 (hermes)"] == ("≤ 1.05", True)
    assert next(v for k, v in cpu.items() if k.startswith("GPU overhead"))[1] is None  # not measured without a GPU


def test_a_random_shape_is_one_model_shared_by_every_dialect(tmp_path):
    """`--model random:<shape>` (here the tiny shape, on CPU): each dialect gets its own tokenizer
    over the same vocabulary and the same model, and the generate part runs through it."""
    from constrained.benchmarks.cli import run
    from constrained.benchmarks.common import ModelSource, make_config

    source = ModelSource("random:tiny", "cpu")
    (kimi_model, kimi_tok), (hermes_model, hermes_tok) = source.load("kimi_k2"), source.load("hermes")
    assert kimi_model is hermes_model and kimi_tok is not hermes_tok and len(kimi_tok) == len(hermes_tok) == kimi_model.config.vocab_size
    cfg = make_config("gpu", device="cpu", model="random:tiny", gen_batches=[1], gen_reps=1, out=str(tmp_path), parts=["generate"])
    res = run(cfg, progress=False)
    assert sorted(res["generate"]) == ["hermes", "kimi_k2"]
    assert all(r["batch1"]["same_tokens_in_every_mode"] for r in res["generate"].values())
    assert (tmp_path / "bench_cpu.json").exists()


def test_bench_jump_part_measures_both_paths(tmp_path):
    """Bench part `jump` on the trained model: the server's and generate's arms ran the same
    dialogues; jump-forward wrote the same calls as plain constrained decoding in fewer passes."""
    from constrained.benchmarks.cli import run
    from constrained.benchmarks.common import make_config

    cfg = make_config("tiny", dialects=["minimax_m1"], out=str(tmp_path), parts=["jump"])
    run(cfg, progress=False)
    data = json.loads((tmp_path / "bench_cpu.json").read_text())
    j = data["jump"]["minimax_m1"]
    assert j["status"] == "ok" and j["dialogues"] == cfg.jump_reps
    arms = j["arms"]
    for plain, jump in (("constrained", "constrained_jump"), ("generate_constrained", "generate_jump")):
        assert arms[jump]["calls"] == arms[plain]["calls"] > 0
        assert arms[jump]["passes"] < arms[plain]["passes"]
        assert j["ratios_to_free"][jump]["passes_per_call"] < 1
    assert arms["constrained_jump"]["jumped"] > 0 and arms["constrained"]["jumped"] == 0
    md = (tmp_path / "bench_cpu.md").read_text()
    assert "Jump-forward in the server" in md and "custom_generate=constrained.jump_forward" in md
    assert any("with jump-forward, seconds per call" in t["target"] for t in data["targets"])


def test_dialogue_scores_count_exact_calls_and_text_answers():
    """The held-out dialogue score both the `generate` bench and the vLLM bench use: calls read by
    any parser, scored against the reference."""
    from constrained.benchmarks import trained
    from constrained.types import as_tools
    from constrained.validation import call_violations

    words = ["tea", "river"]
    cases = trained.held_out(40, words)
    call = next(c for c in cases if c.kind == "call" and len(c.calls) == 1)
    text = next(c for c in cases if c.kind == "text")

    def as_openai(name: str, args: dict | str) -> list[dict]:
        arguments = args if isinstance(args, str) else json.dumps(args)
        return [{"id": "x", "type": "function", "function": {"name": name, "arguments": arguments}}]

    ref = call.calls[0]
    exact = as_openai(ref["name"], ref["arguments"])
    assert trained.score_calls(exact, call_violations(exact, as_tools(call.tools)), True, call) == \
        {"parsed": True, "valid": True, "exact": True, "finished": True, "kind": "call"}
    # the same call cut by max_tokens: neither valid nor exact
    assert not trained.score_calls(exact, [], False, call)["valid"]
    # another value: valid, not exact
    first = next(iter(ref["arguments"]))
    value = ref["arguments"][first]
    other = {**ref["arguments"], first: value + ("x" if isinstance(value, str) else 1)}
    r = trained.score_calls(as_openai(ref["name"], other), [], True, call)
    assert r["valid"] and not r["exact"]
    # arguments that are not JSON, or that break the schema: not valid
    assert not trained.score_calls(as_openai(ref["name"], "{oops"), [], True, call)["valid"]
    broken = as_openai(ref["name"], {})
    assert call_violations(broken, as_tools(call.tools)) and not trained.score_calls(broken, call_violations(broken, as_tools(call.tools)), True, call)["valid"]
    # a text turn: right without calls, wrong with one
    assert trained.score_calls([], [], True, text)["exact"]
    assert not trained.score_calls(exact, [], True, text)["parsed"]
    rows = [trained.score_calls(exact, [], True, call), trained.score_calls([], [], True, text)]
    assert trained.shares(rows)["exact"] == 1.0 and trained.shares(rows)["exact_calls"] == 1.0
