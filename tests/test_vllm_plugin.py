"""The plug-in inside vLLM's own objects, without a server (vllm_plugin_checks.py, run with the
vLLM environment's interpreter): the entry point; `constrained_<dialect>` for every registered
dialect (and `constrained`), building the same grammar; the grammar surviving vLLM's msgpack IPC
to the engine; parser classes created per process and pickling by reference, in processes spawned
as vLLM spawns its API servers (`--api-server-count`); vLLM's own xgrammar backend, patched,
keeping a marker token out of a JSON string, where the stock compile lets it in; and the budget
processor following vLLM's batch protocol."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from vllm_support import python_or_skip

from constrained import dialect as registry


@pytest.fixture(scope="module")
def found():
    python = python_or_skip()
    here = Path(__file__).parent
    proc = subprocess.run([python, str(here / "vllm_plugin_checks.py")], cwd=here, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def test_entry_point_registers_every_dialect(found):
    assert found["entry_point"] == ["constrained.integrations.vllm:register"]
    assert found["dialects"] == registry.names()  # the vLLM environment sees the same dialects
    assert found["tool_parsers"] == sorted(["constrained", *(f"constrained_{n}" for n in registry.names())])
    assert found["reasoning_parsers"] == sorted(["constrained", *(f"constrained_{d.name}" for d in registry.all_dialects() if d.reasoning)])
    assert found["same_grammar"] == {n: True for n in registry.names()}
    assert found["headers"] == {n: f"# constrained dialect={n}" for n in registry.names()}


def test_request_reaches_the_engine_intact(found):
    assert found["msgpack_grammar_intact"] is True
    assert found["skip_special_tokens"] is False  # the markers are special tokens: kept in the text
    assert found["none_unconstrained"] is True


def test_parsers_per_process_and_pickling(found):
    assert found["pickle_same_class"] is True
    pids = {s["pid"] for s in found["api_servers"]}
    assert len(pids) == 2 and found["parent"]["pid"] not in pids
    assert all(s["same_class"] for s in found["api_servers"])  # unpickled to the class the process registered
    assert {s["grammar"] for s in found["api_servers"]} == {found["parent"]["grammar"]}  # every process builds the same grammar


def test_engine_patch_keeps_markers_out_of_strings(found):
    assert found["marker_allowed_inside_string"] == {"header": False, "stock": True}


def test_engine_masks_agree_with_matcher_across_dialects(found):
    """One engine serving several dialects (the parser `constrained`): each named grammar's first
    bitmask allows only its own dialect's opener, never the marker of a grammar compiled before it
    with the same rules (xgrammar 0.2.8's cross-grammar rule cache leaves Token ids out of its
    hash: `xgrammar_token_id_collision`; the compiler keeps such grammars out of that cache)."""
    masks = found["masks_across_dialects"]
    for name, opener in (("hermes", "<tool_call>"), ("longcat", "<longcat_tool_call>"), ("granite", "<|tool_call|>"), ("mistral", "[TOOL_CALLS]")):
        assert masks[name]["refused"] == [], (name, masks[name])
        assert opener in masks[name]["allowed"], (name, masks[name])
    assert "<tool_call>" not in masks["longcat"]["allowed"] and "<|tool_call|>" not in masks["mistral"]["allowed"]


def test_a_grammar_served_lazily_inside_vllms_engine_matches_the_xgrammar_route(found):
    """With CONSTRAINED_LAZY_FROM=0 (`--lazy-from 0`), vLLM's XgrammarGrammar holds llguidance's
    matcher (constrained.lazy): along a whole Kimi call its bitmasks allow what the xgrammar route
    allows, but for the special tokens and non-UTF-8 bytes xgrammar lets stand for text; the marker
    stays out of a string; it terminates, rolls back and resets as vLLM expects."""
    lazy = found["lazy_in_the_engine"]
    assert lazy["matcher"] == "LazyMatcher" and lazy["steps"] > 10
    assert lazy["unexplained"] == [] and lazy["only_lazy"] == []
    assert lazy["marker_refused_in_string"] and lazy["terminated"] and lazy["rolled_back"] and lazy["reset"]


def test_budget_processor_closes_every_output_in_vllms_protocol(found):
    """ToolCallBudget through vLLM's own BatchUpdate protocol (rows added, then swapped): random
    logits never stop on their own, yet each request ends with EOS within its max_tokens, with a
    valid call (required), and the budget had to force the close."""
    budget = found["budget_processor"]
    for r in budget["requests"]:
        assert r["eos"] and r["tokens"] <= r["budget"], r
        assert r["calls"] >= 1 and r["violations"] == [], r
    assert budget["forced"] >= 1
