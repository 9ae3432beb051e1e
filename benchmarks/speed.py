"""Speed: mask fill, mask application, time per output token constrained/free, time to first token,
compile time vs number of tools, server throughput.

Every generate comparison runs the same model on the same prompt in the same process, modes
interleaved within each repetition (order rotated), one warm-up repetition dropped, and the same
tokens decoded in every mode (teacher forcing of a grammatical reference, see `common.Force`), so
each mode does the same number of forward passes through the same grammar states. Time per token
is measured between consecutive decoding steps (`common.Clock`), so prompt prefill is excluded.
"""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import xgrammar as xgr

from .common import (
    BenchConfig,
    Clock,
    Force,
    ModelSource,
    Timed,
    case_prompt,
    encode_batch,
    make_cases,
    median,
    now,
    summary_us,
    timed,
    tool_pool,
    vocab_size,
)

# A tool whose call is long and fully determined by its arguments: the forced reference output.
LONG_TOOL = {
    "type": "function",
    "function": {
        "name": "record_items",
        "description": "Record inventory items.",
        "parameters": {
            "type": "object",
            "properties": {
                "warehouse": {"type": "string", "enum": ["north", "south", "east"]},
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "sku": {"type": "string"},
                            "qty": {"type": "integer", "minimum": 1, "maximum": 999},
                            "fragile": {"type": "boolean"},
                        },
                        "required": ["sku", "qty", "fragile"],
                    },
                },
            },
            "required": ["warehouse", "items"],
        },
    },
}


def long_arguments(n_items: int) -> dict:
    return {"warehouse": "north", "items": [{"sku": f"SKU-{1000 + 37 * i}", "qty": 1 + (7 * i) % 90, "fragile": i % 3 == 0} for i in range(n_items)]}


# -- mask fill -----------------------------------------------------------------------------------
def mask_fill(source: ModelSource, dialect, cfg: BenchConfig, extra_walks: Sequence = ()) -> dict:
    """Time `fill_next_token_bitmask` along reference outputs (the drift corpus' calls, tool_choice
    auto) and along the random model's constrained outputs; batched fill of whole groups through
    `GrammarBatch`; the share of tokens the grammar forces (jump-forward potential)."""
    from constrained import GrammarOptions
    from constrained.compiler import eos_token_ids, grammar_cache
    from constrained.decoding import GrammarBatch, GrammarState, accept_all

    model, tok = source.load(dialect.name)
    vocab = vocab_size(model)
    cache = grammar_cache(tok, vocab)
    stops = eos_token_ids(tok)
    groups = make_cases(dialect, cfg, cfg.mask_walks, seed=cfg.seed + 2)
    single: list[float] = []
    forced = total = 0
    batch_step: list[float] = []
    batch_rows: list[int] = []
    bitmask = xgr.allocate_token_bitmask(1, vocab)
    masks: list[torch.Tensor] = []  # a sample of real masks for the application benchmark
    walks = []
    for cases in groups:
        compiled = cache.compile(dialect, cases[0].tools, GrammarOptions("auto", True, cases[0].first_index)).grammar
        refs = [tok.encode(dialect.render_calls(c.openai_calls(), c.first_index), add_special_tokens=False) + [tok.eos_token_id] for c in cases]
        walks += [(compiled, r, True) for r in refs]
        # batched: the whole group at once, as the processor does
        batch = GrammarBatch(vocab, len(refs))
        states = [GrammarState(compiled, stops) for _ in refs]
        for k in range(max(len(r) for r in refs)):
            if k:
                accept_all(states, [r[min(k - 1, len(r) - 1)] if k - 1 < len(r) else tok.eos_token_id for r in refs])
            t0 = time.perf_counter()
            rows = batch.fill(states)
            dt = time.perf_counter() - t0
            if not rows:
                break
            batch_step.append(dt)
            batch_rows.append(len(rows))
    for case, ids in extra_walks:
        compiled = cache.compile(dialect, case.tools, GrammarOptions("required", True, case.first_index)).grammar
        walks.append((compiled, list(ids), False))
    rng = random.Random(0)
    token_bytes = cache.info.decoded_vocab  # a property that rebuilds the list: read once
    for compiled, ids, is_ref in walks:
        m = xgr.GrammarMatcher(compiled, override_stop_tokens=stops)
        for t in ids:
            if m.is_terminated():
                break
            t0 = time.perf_counter()
            m.fill_next_token_bitmask(bitmask, 0)
            single.append(time.perf_counter() - t0)
            if len(masks) < 64 and rng.random() < 0.2:
                masks.append(bitmask[0].clone())
            if is_ref:
                jf = m.find_jump_forward_string().encode()
                tb = token_bytes[t] if t != tok.eos_token_id else b"\x00"
                total += 1
                forced += bool(jf) and jf.startswith(tb)
            if not m.accept_token(int(t)):
                break
    per_row = [s / r for s, r in zip(batch_step, batch_rows)]
    return {
        "single": summary_us(single),
        "batched_step": summary_us(batch_step),
        "batched_per_row": summary_us(per_row),
        "batch_rows_mean": float(np.mean(batch_rows)) if batch_rows else None,
        "forced_token_share": forced / total if total else None,
        "walks": len(walks),
        "_samples_us": (np.asarray(single) * 1e6).tolist(),
        "_masks": masks,
    }


# -- mask application ----------------------------------------------------------------------------
def mask_apply(masks: Sequence[torch.Tensor], vocab: int, cfg: BenchConfig, device: str) -> dict:
    """Per 129K row: ours (`constrained.masks.apply_bitmask_`) vs `xgrammar.apply_token_bitmask_inplace`,
    on a sample of real grammar states and on the two extremes (every token allowed, as inside a
    JSON string; a single token allowed, as at a forced marker): xgrammar's CPU kernel writes only
    the forbidden entries, so its cost follows the number of forbidden tokens."""
    from constrained.masks import apply_bitmask_

    if not masks:
        return {}
    words = masks[0].shape[-1]
    one = torch.zeros(words, dtype=torch.int32)
    one[0] = 1
    sets = {"real": list(masks), "dense": [torch.full((words,), -1, dtype=torch.int32)], "sparse": [one]}
    allowed = [int(np.unpackbits(m.numpy().view(np.uint8)).sum()) for m in masks]
    out: dict[str, Any] = {"vocab": vocab, "real_states": len(masks), "real_allowed_share_median": float(np.median(allowed)) / vocab}
    gen = torch.Generator().manual_seed(0)
    for set_name, pool in sets.items():
        for batch in (1, 8):
            # each repetition applies the next masks of the pool (every state gets its turn)
            stacks = [torch.stack([pool[(j * batch + i) % len(pool)] for i in range(batch)]) for j in range(min(len(pool), 64))]
            stacks_dev = [b.to(device) for b in stacks] if device != "cpu" else stacks
            logits = torch.randn(batch, vocab, generator=gen).to(device)
            cur = [0]
            fns = {
                "ours": lambda lg=logits, st=stacks, c=cur: apply_bitmask_(lg, st[c[0]]),
                "xgrammar": lambda lg=logits, st=stacks_dev, c=cur: xgr.apply_token_bitmask_inplace(lg, st[c[0]]),
            }
            res: dict[str, list[float]] = {k: [] for k in fns}
            for _ in range(5):
                for f in fns.values():
                    f()
            reps = cfg.apply_reps if set_name == "real" else max(10, cfg.apply_reps // 4)
            for rep in range(reps):
                cur[0] = rep % len(stacks)
                for name in (list(fns) if rep % 2 == 0 else list(fns)[::-1]):
                    t0 = now(device)
                    fns[name]()
                    res[name].append((now(device) - t0) / batch)
            key = f"batch{batch}" if set_name == "real" else f"{set_name}_batch{batch}"
            out[key] = {k: summary_us(v) for k, v in res.items()}
    return out


# -- generate: time per token --------------------------------------------------------------------
def _interleaved(model, tok, enc, refs, factories: dict[str, Callable[[], list]], reps: int, device: str, tick=lambda: None) -> dict:
    plen = enc["input_ids"].shape[1]
    steps = max(len(r) for r in refs)
    names = list(factories)
    per_rep: dict[str, list[dict]] = {n: [] for n in names}
    outputs: dict[str, list] = {}
    for rep in range(reps + 1):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            procs = Timed(factories[name](), device)
            clock = Clock(device)
            with torch.no_grad():
                out = model.generate(**enc, logits_processor=[Force(plen, refs), procs, clock], do_sample=False,
                                     max_new_tokens=steps, min_new_tokens=0, pad_token_id=tok.pad_token_id)
            if rep == 0:
                outputs[name] = out[:, plen:].tolist()
                continue  # warm-up
            dts = clock.step_times()
            per_rep[name].append({"median": float(np.median(dts)), "mean": float(np.mean(dts)), "steps": len(dts) + 1,
                                  "processors_median": float(np.median(procs.spent[1:]))})
        tick()
    same = all(o == outputs[names[0]] for o in outputs.values())
    result: dict[str, Any] = {"tokens": steps, "reps": reps, "same_tokens_in_every_mode": same, "engines": {}}
    base = per_rep[names[0]]
    for name in names:
        runs = per_rep[name]
        result["engines"][name] = {
            "ms_per_token_median": 1e3 * median([r["median"] for r in runs]),
            "ms_per_token_mean": 1e3 * median([r["mean"] for r in runs]),
            "ratio_median": median([r["median"] / b["median"] for r, b in zip(runs, base)]),
            "ratio_mean": median([r["mean"] / b["mean"] for r, b in zip(runs, base)]),
            # the engine's own processors per step (the first step, which builds the rows, left out)
            "processors_us_median": 1e6 * median([r["processors_median"] for r in runs]),
        }
    return result


def generate_ratio(source: ModelSource, dialect, cfg: BenchConfig, tick=lambda: None) -> dict:
    """Tool-call grammar: free vs ours vs the stock xgrammar HF processor at each batch size."""
    from .baselines import TOOL_ENGINES, tool_call_factory
    from .common import Case

    model, tok = source.load(dialect.name)
    tools = [LONG_TOOL] + [t for t, _ in tool_pool(dialect, cfg)[:7]]
    case = Case(0, tools, [("record_items", long_arguments(cfg.gen_items))], 0)
    ref = tok.encode(dialect.render_calls(case.openai_calls(), 0), add_special_tokens=False) + [tok.eos_token_id]
    prompt = case_prompt(tok, dialect, case, use_chat_template=not source.is_demo)
    engines = [e for e in TOOL_ENGINES if e in cfg.engines]
    out = {}
    for batch in cfg.gen_batches:
        enc = encode_batch(tok, [prompt] * batch, source.device)
        factories = {e: tool_call_factory(e, tok, model, dialect, tools, "auto") for e in engines}
        out[f"batch{batch}"] = _interleaved(model, tok, enc, [ref] * batch, factories, cfg.gen_reps, source.device, tick)
    return out


def json_args_ratio(source: ModelSource, dialect_name: str, cfg: BenchConfig, tick=lambda: None) -> dict:
    """The arguments JSON schema alone, through every engine that can express it."""
    from constrained import dialect as registry
    from constrained.chat import prepare_history, render_prompt

    from .baselines import JSON_ENGINES, engine_available, json_schema_factory

    model, tok = source.load(dialect_name)
    schema = LONG_TOOL["function"]["parameters"]
    text = json.dumps(long_arguments(cfg.gen_items))
    ref = tok.encode(text, add_special_tokens=False) + [tok.eos_token_id]
    ask = [{"role": "user", "content": "Record the items as JSON."}]
    d = registry.get(dialect_name)
    prompt = render_prompt(d, prepare_history(ask, d))
    if not source.is_demo and getattr(tok, "chat_template", None):
        prompt = tok.apply_chat_template(ask, tokenize=False, add_generation_prompt=True)
    skipped, factories = {}, {}
    setup_s = {}
    for e in JSON_ENGINES:
        if e not in cfg.engines:
            continue
        why = engine_available(e)
        if why:
            skipped[e] = why
            continue
        try:
            t0 = time.perf_counter()
            factories[e] = json_schema_factory(e, tok, model, schema)
            factories[e]()  # one processor built outside the timings (index/compile)
            setup_s[e] = time.perf_counter() - t0
        except Exception as err:  # noqa: BLE001 - an engine that fails is reported, not fatal
            skipped[e] = f"{type(err).__name__}: {err}"[:300]
    out: dict[str, Any] = {"schema": "record_items arguments", "skipped": skipped, "setup_seconds": setup_s}
    for batch in cfg.gen_batches:
        enc = encode_batch(tok, [prompt] * batch, source.device)
        out[f"batch{batch}"] = _interleaved(model, tok, enc, [ref] * batch, factories, cfg.gen_reps, source.device, tick)
    return out


# -- time to first token ---------------------------------------------------------------------------
def _renamed(tools: Sequence[dict], suffix: str) -> list[dict]:
    out = []
    for t in tools:
        t = json.loads(json.dumps(t))
        t["function"]["name"] = f"{t['function']['name']}_{suffix}"
        out.append(t)
    return out


def ttft(source: ModelSource, dialect, cfg: BenchConfig, tick=lambda: None) -> dict:
    """Wall time from the request (processor construction, i.e. grammar build + compile) to the first
    token: free, ours with a grammar never seen (cold), ours with the same request again (cached)."""
    from constrained import ToolCallLogitsProcessor

    model, tok = source.load(dialect.name)
    vocab = vocab_size(model)
    base_tools = [LONG_TOOL] + [t for t, _ in tool_pool(dialect, cfg)[:7]]
    res: dict[str, list[float]] = {"free": [], "ours_cold": [], "ours_cached": []}
    nonce = random.Random().randrange(1 << 30)
    for rep in range(cfg.ttft_reps + 1):
        tools = _renamed(base_tools, f"t{nonce}x{rep}")
        from .common import Case

        case = Case(rep, tools, [(tools[0]["function"]["name"], long_arguments(1))], 0)
        enc = encode_batch(tok, [case_prompt(tok, dialect, case, use_chat_template=not source.is_demo)], source.device)

        def run(make, enc=enc):
            t0 = now(source.device)
            procs = make()
            with torch.no_grad():
                model.generate(**enc, logits_processor=procs, do_sample=False, max_new_tokens=1, pad_token_id=tok.pad_token_id)
            return now(source.device) - t0

        make = lambda tools=tools: [ToolCallLogitsProcessor(tok, dialect, tools, "auto", vocab_size=vocab)]  # noqa: E731
        times = {"free": run(lambda: []), "ours_cold": run(make), "ours_cached": run(make)}
        if rep:
            for k, v in times.items():
                res[k].append(v)
        tick()
    return {k: {"ms_median": 1e3 * median(v), "ms_min": 1e3 * min(v)} for k, v in res.items() if v}


# -- compile vs number of tools ----------------------------------------------------------------------
def compile_scaling(source: ModelSource, dialect, cfg: BenchConfig, tick=lambda: None) -> dict:
    from constrained import GrammarOptions
    from constrained.compiler import GrammarCache, grammar_cache

    model, tok = source.load(dialect.name)
    vocab = vocab_size(model)
    t0 = time.perf_counter()
    GrammarCache(tok, vocab)
    tokenizer_info_s = time.perf_counter() - t0
    cache = grammar_cache(tok, vocab)
    pool = [t for t, _ in tool_pool(dialect, cfg.__class__(**{**cfg.to_json(), "bfcl_tools": max(cfg.compile_sizes)}))]
    nonce = random.Random().randrange(1 << 30)
    out: dict[str, Any] = {"tokenizer_info_seconds": tokenizer_info_s, "pool": len(pool), "sizes": {},
                           "first_grammar": _first_grammar(tok, vocab, dialect, pool[0], cfg.compile_reps)}
    fresh = xgr.GrammarCompiler(cache.info, cache_enabled=False)
    for n in (0, *cfg.compile_sizes):
        base = [pool[i % len(pool)] for i in range(n)]
        base = [_renamed([t], f"c{i}")[0] if i >= len(pool) else t for i, t in enumerate(base)]
        cold, ebnf, hit = [], [], []
        for rep in range(cfg.compile_reps):
            tools = _renamed(base, f"k{nonce}r{rep}")
            opts = GrammarOptions("auto")
            t0 = time.perf_counter()
            text = cache.ebnf(dialect, _renamed(base, f"e{nonce}r{rep}") if n else tools, opts)  # other names: nothing reused
            ebnf.append(time.perf_counter() - t0)
            if not n:
                # no tools: the dialect's text-only grammar, the fixed part of every grammar; compiled
                # by a compiler without xgrammar's own cache, since the text is the same every time
                t0 = time.perf_counter()
                fresh.compile_grammar(xgr.Grammar.from_ebnf(text))
                cold.append(time.perf_counter() - t0 + ebnf[-1])
                hit.append(0.0)
                continue
            t0 = time.perf_counter()
            cache.compile(dialect, tools, opts)
            cold.append(time.perf_counter() - t0)
            again = json.loads(json.dumps(tools))  # a later request with the same tools: parsed anew from its body
            t0 = time.perf_counter()
            cache.compile(dialect, again, opts)
            hit.append(time.perf_counter() - t0)
            tick()
        out["sizes"][str(n)] = {"cold_ms": 1e3 * median(cold), "ebnf_build_ms": 1e3 * median(ebnf), "cache_hit_ms": 1e3 * median(hit)}
    return out


def _first_grammar(tok, vocab: int, dialect, tool: dict, reps: int) -> dict:
    """The first grammar of a process (a fresh GrammarCache: xgrammar's rule cache is empty), with
    and without `GrammarCache.warm` first (what the server does at start-up), 1 tool."""
    from constrained import GrammarOptions
    from constrained.compiler import GrammarCache

    cold, warm_up, after = [], [], []
    for rep in range(reps):
        tools = _renamed([tool], f"f{rep}")
        for warmed in (False, True):
            cache = GrammarCache(tok, vocab)
            cache._dialect(dialect)  # marker ids and the compiler: once per process, not per grammar
            if warmed:
                warm_up.append(cache.warm(dialect))
            t0 = time.perf_counter()
            cache.compile(dialect, tools, GrammarOptions("auto"))
            (after if warmed else cold).append(time.perf_counter() - t0)
    return {"cold_ms": 1e3 * median(cold), "warm_up_ms": 1e3 * median(warm_up), "after_warm_up_ms": 1e3 * median(after)}


# -- server ----------------------------------------------------------------------------------------------
def server_throughput(source: ModelSource, dialect, cfg: BenchConfig, tick=lambda: None) -> dict:
    """Throughput of the real server (`constrained.server`, uvicorn on 127.0.0.1 in a thread) at
    1/4/16 concurrent chat requests with tool_choice required (the long tool, so the random demo
    model writes until max_tokens): requests/s and completion tokens/s per level."""
    try:
        from constrained.server.app import build_state, create_app
        from constrained.server.engine import EngineConfig
        from constrained.server.testing import BackgroundServer
    except Exception as err:  # noqa: BLE001 - the server is optional for the benchmark
        return {"status": "todo", "reason": f"constrained.server is not importable yet ({type(err).__name__}: {err})"}
    if source.shape is not None:
        return {"status": "skipped", "reason": "the server loads a checkpoint or the demo model, not a random shape"}
    try:
        state = build_state(source.checkpoint, dialect.name, engine_config=EngineConfig(max_batch=max(cfg.server_concurrency), default_seed=cfg.seed),
                            device=source.device)
    except Exception as err:  # noqa: BLE001
        return {"status": "error", "reason": f"build_state failed: {type(err).__name__}: {err}"[:400]}
    try:
        with BackgroundServer(create_app(state)) as url:
            return _load_levels(url, state.names[0], cfg, tick)
    except Exception as err:  # noqa: BLE001
        return {"status": "error", "reason": f"{type(err).__name__}: {err}"[:400]}
    finally:
        state.close()


def _load_levels(url: str, model_name: str, cfg: BenchConfig, tick) -> dict:
    import asyncio

    import httpx

    max_tokens = 32 if cfg.preset != "full" else 64
    body = {"model": model_name, "messages": [{"role": "user", "content": "Record the items."}], "tools": [LONG_TOOL],
            "tool_choice": "required", "max_tokens": max_tokens, "temperature": 1.0}

    async def level(c: int) -> dict:
        async with httpx.AsyncClient(base_url=url, timeout=900) as client:
            async def one(i: int):
                t0 = time.perf_counter()
                r = await client.post("/v1/chat/completions", json={**body, "seed": i})
                if r.status_code != 200:
                    raise RuntimeError(f"HTTP {r.status_code} from the server: {r.text[:300]}")
                return r.json().get("usage", {}).get("completion_tokens", 0), time.perf_counter() - t0

            await one(-1)  # warm-up
            sem = asyncio.Semaphore(c)

            async def guarded(i: int):
                async with sem:
                    return await one(i)

            n = max(c, cfg.server_requests)
            t0 = time.perf_counter()
            got = await asyncio.gather(*[guarded(i) for i in range(n)])
            dt = time.perf_counter() - t0
        tokens = sum(g[0] for g in got)
        return {"requests": n, "seconds": dt, "requests_per_s": n / dt, "tokens_per_s": tokens / dt,
                "latency_s_median": median([g[1] for g in got]), "completion_tokens_mean": tokens / n}

    out: dict[str, Any] = {"status": "ok", "max_tokens": max_tokens, "levels": {}}
    for c in cfg.server_concurrency:
        out["levels"][str(c)] = asyncio.run(level(c))
        tick()
    lv, top = out["levels"], str(max(cfg.server_concurrency))
    if "1" in lv and top in lv:
        out["speedup_max_vs_1"] = lv[top]["tokens_per_s"] / lv["1"]["tokens_per_s"]
        out["speedup_levels"] = f"{top} vs 1 concurrent, completion tokens/s"
    return out


# -- jump-forward ----------------------------------------------------------------------------------
JUMP_ARMS = ("free", "constrained", "constrained_jump")
GENERATE_ARMS = ("generate_free", "generate_constrained", "generate_jump")  # model.generate in this process


def jump_forward(source: ModelSource, dialect, cfg: BenchConfig, tick=lambda: None) -> dict:
    """End-to-end seconds and forward passes per tool call through the real server, one request at
    a time, greedy, on held-out dialogues of the trained demo model (or `--model`'s checkpoint):
    `free` sends the prompt the chat endpoint would write to `/v1/completions` (no grammar) and
    parses the text after the fact; `constrained` is `/v1/chat/completions` with the dialogue's
    tools and `tool_choice: auto`; `constrained_jump` the same on a server with jump-forward (text
    the grammar forces is fed in one forward pass). Per dialogue, each constrained server first
    meets the tool set (its grammar compiles inside that request: `first_sight_seconds`), then the
    three arms run interleaved with the grammar cached, as an agent's later turns find it. The
    first dialogue warms up and is not counted. `calls` counts calls that parse and validate; `agree`
    is the share of dialogues whose calls (or text-only answer) equal the free arm's."""
    try:
        from constrained.chat import prepare_history
        from constrained.server.app import create_app
        from constrained.server.chat import chat_prompt
        from constrained.server.engine import EngineConfig
        from constrained.server.state import build_state
        from constrained.server.testing import BackgroundServer
        from constrained.types import Tool
    except Exception as err:  # noqa: BLE001 - the server is optional for the benchmark
        return {"status": "todo", "reason": f"constrained.server is not importable ({type(err).__name__}: {err})"}
    import httpx

    from constrained import dialogues, parse

    from . import trained

    if source.shape is not None:
        return {"status": "skipped", "reason": "jump-forward is measured on the trained demo model or a checkpoint (a random model writes no calls)"}

    def make(jump: bool):
        return build_state(source.checkpoint, dialect.name, device=source.device, demo_model="trained",
                           engine_config=EngineConfig(max_batch=1, default_seed=cfg.seed, jump_forward=jump))

    states = {jump: make(jump) for jump in (False, True)}
    tok = states[False].tokenizer
    cases = [c for c in trained.held_out(4 * (cfg.jump_reps + 1), dialogues.vocabulary_words(tok)) if c.tools][: cfg.jump_reps + 1]
    totals = {arm: {"requests": 0, "tokens": 0, "passes": 0, "seconds": 0.0, "calls": 0, "jumped": 0, "agree": 0, "first_sight_seconds": 0.0}
              for arm in JUMP_ARMS + GENERATE_ARMS}

    def calls_of(arm: str, out: dict, tools: list[dict]) -> list | None:
        """(name, arguments) of the output's calls when all validate, else None."""
        if arm == "free":
            r = parse(out["choices"][0]["text"], dialect, tools=tools)
            if r.violations:
                return None
            calls = r.tool_calls
        else:
            calls = out["choices"][0]["message"].get("tool_calls") or []
        try:
            return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]
        except ValueError:
            return None

    try:
        with BackgroundServer(create_app(states[False])) as plain_url, BackgroundServer(create_app(states[True])) as jump_url:
            urls = {"free": plain_url, "constrained": plain_url, "constrained_jump": jump_url}
            with httpx.Client(timeout=900) as client:
                for rep, case in enumerate(cases):
                    first_turn = case.messages[: next(i for i, m in enumerate(case.messages) if m["role"] == "assistant")]
                    reference = dialogues.prompt_and_reference(dialect, case)[1]
                    max_tokens = len(tok(reference, add_special_tokens=False)["input_ids"]) + cfg.jump_max_tokens
                    got: dict[str, list | None] = {}
                    # the first request of a tool set compiles its grammar inside the request: timed
                    # apart (`first_sight`), then every arm runs with the grammar cached
                    cold = ("constrained", "constrained_jump") if rep % 2 else ("constrained_jump", "constrained")
                    for arm, first_sight in [(a, True) for a in cold] + [(a, False) for a in JUMP_ARMS[rep % 3:] + JUMP_ARMS[: rep % 3]]:
                        state = states[arm == "constrained_jump"]
                        if arm == "free":
                            history = prepare_history(first_turn, state.dialect)
                            prompt = chat_prompt(state, history, tuple(Tool.from_openai(t) for t in case.tools))
                            path, body = "/v1/completions", {"prompt": prompt}
                        else:
                            path, body = "/v1/chat/completions", {"messages": first_turn, "tools": case.tools, "tool_choice": "auto"}
                        body.update(model=state.names[0], max_tokens=max_tokens, temperature=0.0)
                        stats = state.engine.stats
                        steps, jumped = stats.steps, stats.jump_forward_tokens
                        t0 = time.perf_counter()
                        r = client.post(urls[arm] + path, json=body)
                        dt = time.perf_counter() - t0
                        if r.status_code != 200:
                            raise RuntimeError(f"{arm}: HTTP {r.status_code}: {r.text[:300]}")
                        out = r.json()
                        if rep == 0:
                            continue
                        steps_used, jumped_used = stats.steps - steps, stats.jump_forward_tokens - jumped
                        if not first_sight:  # the same request again (greedy: the same answer), its fastest time kept
                            post = functools.partial(client.post, urls[arm] + path, json=body)
                            dt = min(dt, *(timed(post)[1] for _ in range(cfg.jump_timings - 1)))
                        if first_sight:
                            totals[arm]["first_sight_seconds"] += dt
                            continue
                        got[arm] = calls_of(arm, out, case.tools)
                        t = totals[arm]
                        t["requests"] += 1
                        t["tokens"] += out["usage"]["completion_tokens"]
                        t["passes"] += steps_used
                        t["jumped"] += jumped_used
                        t["seconds"] += dt
                        t["calls"] += len(got[arm] or [])
                    if rep:
                        for arm in JUMP_ARMS:
                            totals[arm]["agree"] += got[arm] == got["free"]
                    tick()
    finally:
        for st in states.values():
            st.close()
    if source.is_demo:
        from constrained import demo

        model, gen_tok = demo.load(dialect)
    else:
        model, gen_tok = source.load(dialect.name)
    _generate_arms(model, gen_tok, dialect, cases, cfg, totals)
    arms_out = {}
    for arm, t in totals.items():
        tokens = max(1, t["tokens"])
        arms_out[arm] = {**t, "passes_per_token": t["passes"] / tokens, "ms_per_token": 1e3 * t["seconds"] / tokens,
                         "calls_per_request": t["calls"] / max(1, t["requests"]), "agree_share": t["agree"] / max(1, t["requests"]),
                         "passes_per_call": t["passes"] / t["calls"] if t["calls"] else None,
                         "seconds_per_call": t["seconds"] / t["calls"] if t["calls"] else None}

    def ratio(a: dict, key: str, free: dict) -> float | None:
        return a[key] / free[key] if a[key] is not None and free[key] else None

    ratios = {arm: {k: ratio(a, k, arms_out["generate_free" if arm.startswith("generate") else "free"])
                    for k in ("passes_per_token", "ms_per_token", "passes_per_call", "seconds_per_call")}
              for arm, a in arms_out.items() if arm not in ("free", "generate_free")}
    free = arms_out["free"]
    for arm, r in ratios.items():
        r["seconds_per_token"] = r.pop("ms_per_token")
        # the same outputs written when the tool set is new: its grammar's compile inside the request
        r["first_sight_seconds_per_call"] = totals[arm]["first_sight_seconds"] / arms_out[arm]["calls"] / free["seconds_per_call"] \
            if arms_out[arm]["calls"] and free["seconds_per_call"] and arm in JUMP_ARMS else None
    return {"status": "ok", "model": source.path or "trained demo model", "dialogues": len(cases) - 1, "timings": cfg.jump_timings,
            "max_tokens": f"reference + {cfg.jump_max_tokens}", "arms": arms_out, "ratios_to_free": ratios}


def _generate_arms(model, tok, dialect, cases: list, cfg: BenchConfig, totals: dict) -> None:
    """The same dialogues through `model.generate`, greedy: no processor (`generate_free`, calls
    parsed after the fact), our processor (`generate_constrained`), and our processor with
    `custom_generate=constrained.jump_forward` (`generate_jump`). Forward passes are counted by a
    hook on the model; the first dialogue warms up. The processor is made per dialogue (its grammar
    is cached after the first sight, as the server's arms measure it)."""
    import constrained
    from constrained import dialogues, parse
    from constrained.compiler import eos_token_ids
    from constrained.processor import ToolCallLogitsProcessor

    stops = eos_token_ids(tok, model)
    passes = {"n": 0}
    hook = model.register_forward_hook(lambda *_: passes.__setitem__("n", passes["n"] + 1))
    try:
        for rep, case in enumerate(cases):
            prompt, reference = dialogues.prompt_and_reference(dialect, case)
            enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
            max_new = len(tok(reference, add_special_tokens=False)["input_ids"]) + cfg.jump_max_tokens
            got = {}
            for arm in GENERATE_ARMS[rep % 3:] + GENERATE_ARMS[: rep % 3]:
                extra = {"custom_generate": constrained.jump_forward} if arm == "generate_jump" else {}
                run = functools.partial(model.generate, **enc, do_sample=False, max_new_tokens=max_new, eos_token_id=stops,
                                        pad_token_id=tok.pad_token_id, **extra)

                def procs(arm: str = arm, case: Any = case) -> list:  # a new processor per run: it keeps its rows' states
                    return [] if arm == "generate_free" else \
                        [ToolCallLogitsProcessor(tok, dialect, case.tools, "auto", vocab_size=model.config.vocab_size, eos_token_id=stops)]

                before = passes["n"]
                first = procs()
                t0 = time.perf_counter()
                out = run(logits_processor=first)
                dt = time.perf_counter() - t0
                used = passes["n"] - before
                for _ in range(cfg.jump_timings - 1 if rep else 0):  # again (greedy: the same output), its fastest time kept
                    again = procs()
                    dt = min(dt, timed(functools.partial(run, logits_processor=again), str(model.device))[1])
                ids = [t for t in out[0, enc["input_ids"].shape[1]:].tolist() if t not in stops and t != tok.pad_token_id]
                r = parse(tok.decode(ids, skip_special_tokens=False), dialect, tools=case.tools)
                got[arm] = None if r.violations else [(c["function"]["name"], c["function"]["arguments"]) for c in r.tool_calls]
                if rep == 0:
                    continue
                t = totals[arm]
                t["requests"] += 1
                t["tokens"] += len(ids) + 1
                t["passes"] += used
                t["seconds"] += dt
                t["calls"] += len(got[arm] or [])
            if rep:
                for arm in GENERATE_ARMS:
                    totals[arm]["agree"] += got[arm] == got["generate_free"]
    finally:
        hook.remove()
