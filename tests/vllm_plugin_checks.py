"""Run by tests/test_vllm_plugin.py with the vLLM environment's interpreter (no server): prints one
JSON object of findings, which the test asserts on. Each part does what vLLM itself does."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
import sys
from types import SimpleNamespace


def required_request(dialect_xarg: str | None = None, tool_choice: object = "required"):
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}]
    messages = [{"role": "user", "content": "time?"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "x", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}}]},
                {"role": "tool", "tool_call_id": "x", "content": "10:00"}, {"role": "user", "content": "and now?"}]
    return ChatCompletionRequest(model="m", messages=messages, tools=tools, tool_choice=tool_choice,
                                 vllm_xargs={"constrained_dialect": dialect_xarg} if dialect_xarg else None)


def grammar_of(parser_name: str, dialect: str, dialect_xarg: str | None = None) -> str:
    from vllm.tool_parsers.abstract_tool_parser import ToolParserManager

    from constrained import demo

    parser = ToolParserManager.get_tool_parser(parser_name)(demo.load_tokenizer(dialect))
    return parser.adjust_request(required_request(dialect_xarg)).structured_outputs.grammar


def api_server(args: tuple[bytes, str]) -> dict:
    """What a spawned API-server process does (vLLM's --api-server-count N): load the plug-ins,
    resolve the parser by name, serve a request. Also unpickles a parser class sent by the parent."""
    pickled, name = args
    from vllm.plugins import load_general_plugins

    load_general_plugins()
    from vllm.tool_parsers.abstract_tool_parser import ToolParserManager

    cls = pickle.loads(pickled)
    grammar = grammar_of(name, "kimi_k2")
    return {"pid": os.getpid(), "same_class": cls is ToolParserManager.get_tool_parser(name),
            "grammar": hashlib.sha256(grammar.encode()).hexdigest()}


def marker_inside_string(grammar: str) -> dict:
    """vLLM's own XgrammarBackend (patched by the plug-in), fed a Kimi call up to inside a JSON
    string: may the next token be the marker <|tool_call_end|>? Our header route vs the stock one."""
    from vllm.v1.structured_output.backend_types import StructuredOutputOptions
    from vllm.v1.structured_output.backend_xgrammar import XgrammarBackend

    from constrained import demo

    tok = demo.load_tokenizer("kimi_k2")
    config = SimpleNamespace(structured_outputs_config=SimpleNamespace(disable_any_whitespace=False), model_config=None, speculative_config=None)
    backend = XgrammarBackend(vllm_config=config, tokenizer=tok, vocab_size=len(tok))
    prefix = tok.encode('<|tool_calls_section_begin|><|tool_call_begin|>functions.get_time:1<|tool_call_argument_begin|>{"tz": "Par', add_special_tokens=False)
    marker = tok.convert_tokens_to_ids("<|tool_call_end|>")
    out = {}
    for route, spec in (("header", grammar), ("stock", grammar.split("\n", 1)[1])):
        g = backend.compile_grammar(StructuredOutputOptions.GRAMMAR, spec)
        assert g.accept_tokens("r", prefix), route
        out[route] = g.validate_tokens([marker]) == [marker]
    return out


def lazy_in_the_engine(grammar: str) -> dict:
    """vLLM's own XgrammarBackend (patched) with CONSTRAINED_LAZY_FROM=0, as `constrained serve
    --engine vllm --lazy-from 0` sets it: our grammar is served by llguidance's matcher inside
    vLLM's XgrammarGrammar. A whole Kimi call walked through it and through the xgrammar route
    (CONSTRAINED_LAZY_FROM=-1) side by side: the tokens the two bitmasks allow at each step (they
    may differ only in special tokens xgrammar lets stand for their text, and in bytes that are no
    UTF-8), the marker refused inside a string, rollback and reset."""
    import codecs

    import numpy as np
    from vllm.v1.structured_output.backend_types import StructuredOutputOptions
    from vllm.v1.structured_output.backend_xgrammar import XgrammarBackend

    from constrained import demo
    from constrained.integrations.vllm import LAZY_FROM_ENV

    tok = demo.load_tokenizer("kimi_k2")
    config = SimpleNamespace(structured_outputs_config=SimpleNamespace(disable_any_whitespace=False), model_config=None, speculative_config=None)
    backend = XgrammarBackend(vllm_config=config, tokenizer=tok, vocab_size=len(tok))
    routes = {}
    for route, setting in (("lazy", "0"), ("xgrammar", "-1")):
        os.environ[LAZY_FROM_ENV] = setting
        routes[route] = backend.compile_grammar(StructuredOutputOptions.GRAMMAR, grammar)
    del os.environ[LAZY_FROM_ENV]
    lazy, xg = routes["lazy"], routes["xgrammar"]
    head = '<|tool_calls_section_begin|><|tool_call_begin|>functions.get_time:1<|tool_call_argument_begin|>{"tz": "Par'
    call = tok.encode(head, add_special_tokens=False) + tok.encode('is"}<|tool_call_end|><|tool_calls_section_end|>', add_special_tokens=False)
    inside_string = len(tok.encode(head, add_special_tokens=False))
    marker = tok.convert_tokens_to_ids("<|tool_call_end|>")
    specials = set(tok.all_special_ids) | set(tok.added_tokens_decoder)

    def text_like(t: int) -> bool:  # a token xgrammar may allow where llguidance does not
        try:
            codecs.getincrementaldecoder("utf-8")().decode(tok.convert_tokens_to_string([tok.convert_ids_to_tokens(t)]).encode(), final=False)
        except UnicodeDecodeError:
            return True
        return t in specials

    def allowed(g: object) -> set[int]:
        bitmask = backend.allocate_token_bitmask(1)
        g.fill_bitmask(bitmask, 0)
        bits = bitmask[0].numpy().view(np.uint32)
        ids = np.nonzero((bits[np.arange(len(tok)) >> 5] >> (np.arange(len(tok)) & 31)) & 1)[0]
        return set(ids.tolist())

    out: dict = {"matcher": type(lazy.matcher).__name__, "steps": 0, "unexplained": [], "only_lazy": []}
    first = allowed(lazy)
    for k, token in enumerate([*call, tok.eos_token_id]):
        a, b = allowed(lazy), allowed(xg)
        out["only_lazy"] += sorted(a - b)
        out["unexplained"] += [t for t in sorted(b - a) if not text_like(t)]
        if k == inside_string:
            out["marker_refused_in_string"] = lazy.validate_tokens([marker]) == [] and xg.validate_tokens([marker]) == []
        assert token in a, (k, tok.convert_ids_to_tokens(token))
        assert lazy.accept_tokens("r", [token]) and xg.accept_tokens("r", [token])
        out["steps"] += 1
    out["terminated"] = lazy.is_terminated() and xg.is_terminated()
    lazy.rollback(3)
    out["rolled_back"] = not lazy.is_terminated() and lazy.validate_tokens(call[-2:] + [tok.eos_token_id]) == call[-2:] + [tok.eos_token_id]
    lazy.reset()
    out["reset"] = lazy.num_processed_tokens == 0 and allowed(lazy) == first and lazy.accept_tokens("r", call)
    return out


def masks_across_dialects() -> dict:
    """One engine (vLLM's XgrammarBackend, patched) compiling named-call grammars of several
    dialects, as a server with the parser `constrained` does: hermes then longcat, granite then
    mistral (each pair the same rules around a different marker token). For each grammar, the
    tokens its first bitmask allows, and those among them its matcher refuses (a sampled one would
    end the request: "grammar rejected tokens", HTTP 500). Also whether xgrammar's own cached
    compiler still gives a rule that differs only in a Token id the earlier rule's masks."""
    import numpy as np
    import xgrammar as xgr
    from vllm.tool_parsers.abstract_tool_parser import ToolParserManager
    from vllm.v1.structured_output.backend_types import StructuredOutputOptions
    from vllm.v1.structured_output.backend_xgrammar import XgrammarBackend

    from constrained import demo
    from constrained import dialect as registry

    order = ("hermes", "longcat", "granite", "mistral")
    tok = demo.load_tokenizer(order[0], tuple(m for n in order[1:] for m in registry.get(n).vocab_markers))
    config = SimpleNamespace(structured_outputs_config=SimpleNamespace(disable_any_whitespace=False), model_config=None, speculative_config=None)
    backend = XgrammarBackend(vllm_config=config, tokenizer=tok, vocab_size=len(tok))
    parser = ToolParserManager.get_tool_parser("constrained")(tok)
    out: dict = {}
    for name in order:
        request = required_request(name, tool_choice={"type": "function", "function": {"name": "get_time"}})
        g = backend.compile_grammar(StructuredOutputOptions.GRAMMAR, parser.adjust_request(request).structured_outputs.grammar)
        bitmask = backend.allocate_token_bitmask(1)
        g.fill_bitmask(bitmask, 0)
        bits = bitmask[0].numpy().view(np.uint32)
        allowed = [i for i in range(len(tok)) if (bits[i >> 5] >> (i & 31)) & 1]
        out[name] = {"allowed": tok.convert_ids_to_tokens(allowed), "refused": tok.convert_ids_to_tokens([t for t in allowed if g.validate_tokens([t]) != [t]])}
    info = xgr.TokenizerInfo([b"a", b"<A>", b"<B>", b"x"], xgr.VocabType.RAW, vocab_size=4)
    compiler = xgr.GrammarCompiler(info)  # xgrammar's cache on, as in vLLM's stock compile
    firsts = []
    for ebnf in ('root ::= Token(1) "x"', 'root ::= Token(2) "x"'):
        m = xgr.GrammarMatcher(compiler.compile_grammar(ebnf))
        mask = xgr.allocate_token_bitmask(1, 4)
        m.fill_next_token_bitmask(mask)
        firsts.append(int(mask[0, 0]) & 0b1111)
    out["xgrammar_token_id_collision"] = firsts[0] == firsts[1]
    return out


def budget_processor() -> dict:
    """`ToolCallBudget` driven through vLLM's V1 logits-processor protocol by hand: two requests of
    our grammar (Kimi-K2, required) in one batch, sampled from seeded random logits (a model that
    never stops on its own), masked by the engine's matcher (compiled as the patched backend does),
    then the processor; halfway through, the rows swap places, as vLLM's persistent batch does.
    Returns, per request: its budget, tokens, whether it ended with EOS, and its calls."""
    import torch
    import xgrammar as xgr
    from vllm.sampling_params import SamplingParams, StructuredOutputsParams
    from vllm.tool_parsers.abstract_tool_parser import ToolParserManager
    from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

    from constrained import demo, parse
    from constrained.compiler import grammar_cache
    from constrained.integrations.vllm.backend import compile_marked
    from constrained.integrations.vllm.budget import ToolCallBudget

    tok = demo.load_tokenizer("kimi_k2")
    vocab = len(tok)
    request = required_request()
    grammar = ToolParserManager.get_tool_parser("constrained_kimi_k2")(tok).adjust_request(request).structured_outputs.grammar
    proc = ToolCallBudget(SimpleNamespace(model_config=None), torch.device("cpu"), False)
    proc._cache = grammar_cache(tok, vocab)  # what cache() loads from the model's tokenizer path
    budgets = [40, 64]
    outputs: list[list[int]] = [[], []]
    added = []
    for i, budget in enumerate(budgets):
        params = SamplingParams(max_tokens=budget, structured_outputs=StructuredOutputsParams(grammar=grammar))
        params.update_from_generation_config({}, tok.eos_token_id)
        added.append((i, params, [1, 2, 3], outputs[i]))
    engines = [xgr.GrammarMatcher(compile_marked(tok, vocab, "kimi_k2", grammar), override_stop_tokens=[tok.eos_token_id]) for _ in budgets]
    order = [0, 1]  # batch row -> request
    proc.update_state(BatchUpdate(batch_size=2, removed=[], added=added, moved=[]))
    g = torch.Generator().manual_seed(0)
    bitmask = xgr.allocate_token_bitmask(1, vocab)
    for step in range(max(budgets)):
        if step == 10:  # vLLM's persistent batch moves rows; the processor must follow
            order.reverse()
            proc.update_state(BatchUpdate(batch_size=2, removed=[], added=[], moved=[(0, 1, MoveDirectionality.SWAP)]))
        logits = torch.randn(2, vocab, generator=g) * 4
        live = [r for r in range(2) if not engines[order[r]].is_terminated() and len(outputs[order[r]]) < budgets[order[r]]]
        for r in live:
            engines[order[r]].fill_next_token_bitmask(bitmask, 0)
            row = logits[r : r + 1]
            xgr.apply_token_bitmask_inplace(row, bitmask)
        proc.apply(logits)
        for r in live:
            token = int(torch.multinomial(torch.softmax(logits[r], -1), 1, generator=g))
            assert engines[order[r]].accept_token(token), "the processor gave a token the engine's grammar refuses"
            outputs[order[r]].append(token)
        proc.update_state(None)
    tools = [t.model_dump(exclude_none=True) for t in request.tools or ()]
    out = []
    for i, budget in enumerate(budgets):
        ids = outputs[i]
        result = parse(tok.decode([t for t in ids if t != tok.eos_token_id], skip_special_tokens=False), "kimi_k2", tools, 1)
        out.append({"budget": budget, "tokens": len(ids), "eos": bool(ids) and ids[-1] == tok.eos_token_id,
                    "calls": len(result.tool_calls), "violations": result.violations})
    return {"requests": out, "forced": proc.forced}


def main() -> None:
    from importlib.metadata import entry_points

    from constrained import dialect as registry

    found: dict = {"entry_point": [e.value for e in entry_points(group="vllm.general_plugins") if e.name == "constrained"]}
    from vllm.plugins import load_general_plugins

    load_general_plugins()  # what every vLLM process does first
    from vllm.reasoning.abs_reasoning_parsers import ReasoningParserManager
    from vllm.tool_parsers.abstract_tool_parser import ToolParserManager

    found["dialects"] = registry.names()
    found["tool_parsers"] = [n for n in ToolParserManager.list_registered() if n.startswith("constrained")]
    found["reasoning_parsers"] = [n for n in ReasoningParserManager.list_registered() if n.startswith("constrained")]
    # constrained_<name> and `constrained` + vllm_xargs build the same grammar, for every dialect
    found["same_grammar"] = {n: grammar_of(f"constrained_{n}", n) == grammar_of("constrained", n, n) for n in registry.names()}
    found["headers"] = {n: grammar_of(f"constrained_{n}", n).split("\n", 1)[0] for n in registry.names()}
    # the request's grammar crosses to the engine as SamplingParams, msgpack-encoded (vLLM's IPC)
    from vllm.v1.serial_utils import MsgpackDecoder, MsgpackEncoder

    from constrained import demo

    parser = ToolParserManager.get_tool_parser("constrained_kimi_k2")(demo.load_tokenizer("kimi_k2"))
    request = parser.adjust_request(required_request())
    params = request.to_sampling_params(64, {})
    sent = MsgpackDecoder(type(params)).decode(MsgpackEncoder().encode(params))
    found["msgpack_grammar_intact"] = sent.structured_outputs.grammar == request.structured_outputs.grammar
    found["skip_special_tokens"] = sent.skip_special_tokens
    found["none_unconstrained"] = parser.adjust_request(required_request(tool_choice="none")).structured_outputs is None
    # parser classes pickle by reference: another process gets its own, equal class by name
    found["pickle_same_class"] = pickle.loads(pickle.dumps(ToolParserManager.get_tool_parser("constrained_kimi_k2"))) is ToolParserManager.get_tool_parser("constrained_kimi_k2")
    ctx = multiprocessing.get_context("spawn")  # how vLLM starts its API-server processes
    with ctx.Pool(2) as pool:
        found["api_servers"] = pool.map(api_server, [(pickle.dumps(ToolParserManager.get_tool_parser("constrained_kimi_k2")), "constrained_kimi_k2")] * 2)
    found["parent"] = {"pid": os.getpid(), "grammar": hashlib.sha256(request.structured_outputs.grammar.encode()).hexdigest()}
    found["marker_allowed_inside_string"] = marker_inside_string(request.structured_outputs.grammar)
    found["masks_across_dialects"] = masks_across_dialects()
    found["lazy_in_the_engine"] = lazy_in_the_engine(request.structured_outputs.grammar)
    found["budget_processor"] = budget_processor()
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main()
