"""vLLM (CPU build) started by `constrained serve --engine vllm --dialect kimi_k2 --demo-nudge --
--api-server-count 2` (so `--tool-call-parser constrained_kimi_k2 --reasoning-parser
constrained_kimi_k2`, two API-server processes) on the Kimi demo checkpoint: the seed's client loops
unmodified, tool_choice required / named / auto over hidden-style tool sets (every call in our
grammar, parsed and valid), streaming, Kimi ids across the conversation, what stays unconstrained,
special tokens kept out of strings, reasoning, response_format, 400s.

One vLLM start for the module (~70-90 s on 2 cores); see vllm_support.py.
"""

from __future__ import annotations

import json

import pytest
from helpers import run_client
from vllm_support import MODEL, Reply, ask, ask_many, check, choice, ended, replay, server_fixtures, writable_tools

DIALECT = "kimi_k2"
N = 20  # requests per tool_choice


server, tokenizer, client = server_fixtures(DIALECT, extra_args=["--api-server-count", "2"], via_cli=True)


def test_seed_001_kimi_non_streaming(server):
    out = run_client("kimi_001_nonstreaming.py", {"CONSTRAINED_ENDPOINT": server.url + "/v1", "CONSTRAINED_MODEL": MODEL})
    # the demo nudge calls after the user's turn and answers after the tool result: one round
    assert out.count("tool_result {'weather': 'Sunny'}") >= 1
    assert "-" * 100 in out


def test_seed_001_kimi_streaming(server):
    out = run_client("kimi_001_streaming.py", {"CONSTRAINED_ENDPOINT": server.url + "/v1", "CONSTRAINED_MODEL": MODEL})
    assert "Traceback" not in out  # the loop ran to its end (json.loads of every streamed call's arguments included)


@pytest.mark.parametrize("kind", ["required", "named", "auto"])
def test_tool_choice_over_hidden_style_tools(client, tokenizer, kind):
    whole = ask_many(client, N, DIALECT, choice(kind), max_tokens=256)
    streamed = ask_many(client, N // 2, DIALECT, choice(kind), stream=True, max_tokens=256)
    counts = check(tokenizer, DIALECT, whole + streamed)
    assert counts["calls"] >= N  # the nudge opens a call at the first step: the checks saw calls
    assert any(c["function"]["name"] == "recursive_tree" or "." in c["function"]["name"] for r in whole for c in r.calls)


@pytest.mark.parametrize("stream", [False, True])
def test_every_output_completes_within_max_tokens(client, tokenizer, stream):
    """The budget processor (vllm/budget.py): at max_tokens from the shortest complete answer up,
    every required and named reply ends on its own with a valid call, however long the model
    would have gone on (the random model writes until it is stopped)."""
    from constrained import ToolCallLogitsProcessor

    tools = writable_tools(DIALECT)[:5]
    for kind in ("required", "named"):
        tool_choice = choice(kind)(tools, 0)
        shortest = ToolCallLogitsProcessor(tokenizer, DIALECT, tools, tool_choice).minimum_tokens()
        assert shortest is not None
        budgets = [b for b in (shortest, shortest + 3, 48, 96) for _ in range(3)]
        replies = [ask(client, tools, tool_choice, stream=stream, seed=k, max_tokens=b) for k, b in enumerate(budgets)]
        check(tokenizer, DIALECT, replies)  # every reply ended (EOS) within its max_tokens, every call valid
        assert all(r.calls and len(r.token_ids) <= b for r, b in zip(replies, budgets))


def test_kimi_ids_continue_the_conversation(client, tokenizer):
    tools = writable_tools(DIALECT)[:6]
    replies = [ask(client, tools, "required", first_index=k, stream=stream, seed=k, max_tokens=256) for k in (1, 3, 7) for stream in (False, True)]
    check(tokenizer, DIALECT, replies)  # asserts functions.NAME:IDX from first_index on
    assert all(r.calls and r.calls[0]["id"].endswith(f":{r.first_index}") for r in replies)


def test_parallel_tool_calls_false(client, tokenizer):
    replies = ask_many(client, 8, DIALECT, choice("required"), parallel=False, max_tokens=256)
    check(tokenizer, DIALECT, replies, parallel=False)


def test_special_tokens_stay_out_of_strings(client, tokenizer):
    """Pushed toward Kimi's markers and <|im_end|>, the model still writes them only where the
    grammar puts them: the engine-side compile (marker vocabulary) is in effect."""
    markers = ["<|tool_call_end|>", "<|tool_call_begin|>", "<|im_end|>", "<|tool_calls_section_end|>", "<|tool_call_argument_begin|>"]
    bias = {str(tokenizer.convert_tokens_to_ids(m)): 30 for m in markers}
    tools = [t for t in writable_tools(DIALECT) if t["function"]["name"] in ("fs.read-file", "unicode_args", "translate")]
    replies = []
    for seed in range(6):
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}], tools=tools, tool_choice="required", max_tokens=128,
                                           seed=seed, logit_bias=bias, extra_body={"return_token_ids": True})
        ch = r.choices[0]
        for c in ch.message.tool_calls or []:
            assert not any(m in c.function.arguments for m in markers), c.function.arguments
        replies.append(ch)
    for ch in replies:
        replay(tokenizer, DIALECT, Reply(tools, "required", 0, False, ch.finish_reason, None, None, [], list(ch.model_extra["token_ids"])))


def test_unconstrained_without_tools_or_with_tool_choice_none(client, tokenizer):
    """No grammar: with the section marker pushed, tool_choice "none" lets the model write it
    (our grammar for "none" would forbid it), and nothing is parsed as a call."""
    trigger = tokenizer.convert_tokens_to_ids("<|tool_calls_section_begin|>")
    tools = writable_tools(DIALECT)[:3]
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], tools=tools, tool_choice="none", max_tokens=12,
                                       logit_bias={str(trigger): 100}, extra_body={"return_token_ids": True, "vllm_xargs": {"constrained_nudge": "off"}})
    ch = r.choices[0]
    assert trigger in ch.model_extra["token_ids"] and not ch.message.tool_calls
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=12, logit_bias={str(trigger): 100},
                                       extra_body={"return_token_ids": True, "vllm_xargs": {"constrained_nudge": "off"}})
    assert trigger in r.choices[0].model_extra["token_ids"] and not r.choices[0].message.tool_calls


def test_reasoning_block(client, tokenizer):
    """The grammar holds the think block; the reasoning parser hands it out as `reasoning`."""
    think, close = tokenizer.convert_tokens_to_ids("<think>"), tokenizer.convert_tokens_to_ids("</think>")
    tools = writable_tools(DIALECT)[:4]
    for stream in (False, True):
        kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "think first"}], tools=tools, tool_choice="required", max_tokens=256, seed=5,
                      logit_bias={str(think): 100, str(close): 36}, extra_body={"return_token_ids": True})
        if not stream:
            ch = client.chat.completions.create(**kwargs).choices[0]
            reasoning, calls = ch.message.model_extra.get("reasoning"), ch.message.tool_calls or []
            ids = ch.model_extra["token_ids"]
        else:
            reasoning, calls, ids = "", [], []
            for chunk in client.chat.completions.create(stream=True, **kwargs):
                if chunk.choices:
                    reasoning += (chunk.choices[0].delta.model_extra or {}).get("reasoning") or ""
                    calls += chunk.choices[0].delta.tool_calls or []
                    ids += chunk.choices[0].model_extra.get("token_ids") or []
        assert ids[0] == think and close in ids  # the model thought, then closed the block
        assert reasoning is not None and "<think>" not in (reasoning or "")
        assert calls, "required: a call after the think block"


def test_thinking_token_budget_closes_the_think_block(client, tokenizer):
    """vLLM's `thinking_token_budget` forces `</think>` once the budget is spent, which our grammar
    allows at every point of the think block: the think block is bounded, and the call follows."""
    think, close = tokenizer.convert_tokens_to_ids("<think>"), tokenizer.convert_tokens_to_ids("</think>")
    tools = writable_tools(DIALECT)[:4]
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "think first"}], tools=tools, tool_choice="required",
                  logit_bias={str(think): 100, str(close): -100})  # think (over the nudge's first-step call), never close
    for budget in (4, 12):
        ch = client.chat.completions.create(**kwargs, max_tokens=160, seed=budget, extra_body={"return_token_ids": True, "thinking_token_budget": budget}).choices[0]
        ids = ch.model_extra["token_ids"]
        assert ids[0] == think and close in ids and ids.index(close) <= budget + 2, (budget, ids[:20])
        replay(tokenizer, DIALECT, Reply(tools, "required", 0, False, ch.finish_reason, None, None, [], list(ids)))
        assert ch.message.tool_calls, "the call follows the closed think block"
    # without a thinking budget the model never closes the block (logit_bias): the token budget
    # (vllm/budget.py) closes it in time for the required call, within max_tokens
    ch = client.chat.completions.create(**kwargs, max_tokens=48, seed=4, extra_body={"return_token_ids": True}).choices[0]
    ids = ch.model_extra["token_ids"]
    assert close in ids and len(ids) <= 48 and ids[-1] == tokenizer.eos_token_id and ch.message.tool_calls, ids


def test_response_format_with_tools(client, tokenizer):
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["oui", "non"]}}, "required": ["answer"]}
    rf = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}}
    for seed in range(3):
        r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "answer"}], tools=writable_tools(DIALECT)[:3], tool_choice="auto",
                                           response_format=rf, max_tokens=64, seed=seed,
                                           extra_body={"return_token_ids": True, "vllm_xargs": {"constrained_nudge": "off"}})
        ch = r.choices[0]
        if not ch.message.tool_calls and ended(tokenizer, _reply(ch)):
            assert json.loads(ch.message.content)["answer"] in ("oui", "non")


def _reply(ch):
    return Reply([], "auto", 0, False, ch.finish_reason, ch.message.content, None, [], list(ch.model_extra["token_ids"]))


def test_what_the_grammar_cannot_serve_is_a_400(client):
    from openai import BadRequestError

    bad_name = [{"type": "function", "function": {"name": "bad name!", "parameters": {"type": "object"}}}]
    with pytest.raises(BadRequestError, match="constrained: tool name 'bad name!'"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], tools=bad_name, tool_choice="auto", max_tokens=4)
    bad_schema = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"$ref": "https://example.com/x.json"}}}}}]
    with pytest.raises(BadRequestError, match=r"constrained: tool 'f': unsupported JSON Schema keyword '\$ref'"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], tools=bad_schema, tool_choice="required", max_tokens=4)
    with pytest.raises(BadRequestError, match="constrained_kimi_k2"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], tools=writable_tools(DIALECT)[:1], tool_choice="auto",
                                       max_tokens=4, extra_body={"vllm_xargs": {"constrained_dialect": "hermes"}})
