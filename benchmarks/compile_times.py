"""Request compile times over a MaskBench-style corpus, as the server pays them: each schema is one
tool of a new request, compiled by the server's grammar cache (warmed up at start, as `constrained
serve` does) for one dialect on the demo tokenizer (128K vocabulary). The figures choose the
server's `--compile-timeout` default (its p99.9, rounded up).

    python -m constrained.benchmarks.compile_times ../shared/data/maskbench [--dialect kimi_k2] [--out times.json]

With ``--large N`` it measures N generated large schemas instead (`benchmarks.large_schemas`), each
compiled as the server does (from `LAZY_FROM_CHARS` of grammar text, served by llguidance with
lazy masks: `constrained.lazy`), and in the same run the same grammar by xgrammar alone, and
llguidance's own compile of the schema (another language: for scale); with the grammar's size,
its guarded key rules (`constrained.keys`), and the lazy masks' cost over a random walk.

    python -m constrained.benchmarks.compile_times --large 10 [--out large.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def started(dialect_name: str, freeze: bool) -> tuple:
    """(dialect, tokenizer, grammar cache) as `constrained serve` starts them: the cache warmed
    (xgrammar's rule cache, llguidance's tokenizer) and, with `freeze`, start-up's objects put out
    of the garbage collector's walks (`server.memory.freeze_start_up_heap`)."""
    from constrained import demo
    from constrained import dialect as registry
    from constrained.compiler import grammar_cache
    from constrained.server.memory import freeze_start_up_heap

    d = registry.get(dialect_name)
    tok = demo.load_tokenizer(d)
    cache = grammar_cache(tok)
    cache.warm(d)
    if freeze:
        freeze_start_up_heap()
    return d, tok, cache


def measure(folder: str, dialect_name: str = "kimi_k2", limit: int | None = None, progress: bool = True, freeze: bool = True) -> dict:
    from constrained.errors import ToolSpecError, UnsupportedSchemaError
    from constrained.grammar import GrammarOptions
    from constrained.types import Tool

    d, _, cache = started(dialect_name, freeze)
    times: dict[str, float] = {}
    refused: dict[str, str] = {}
    files = sorted(Path(folder).glob("*.json"))[:limit]
    for i, path in enumerate(files):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))["schema"]
        except (ValueError, KeyError) as err:
            refused[path.name] = f"unreadable: {err}"
            continue
        t0 = time.perf_counter()
        try:
            cache.compile(d, [Tool("t", schema)], GrammarOptions(tool_choice="required"))
        except (UnsupportedSchemaError, ToolSpecError, RuntimeError) as err:
            refused[path.name] = str(err)[:200]
            continue
        times[path.name] = time.perf_counter() - t0
        if progress and (i + 1) % 200 == 0:
            print(f"{i + 1}/{len(files)}", file=sys.stderr, flush=True)
    xs = list(times.values())
    slowest = sorted(times.items(), key=lambda kv: -kv[1])[:10]
    return {"dialect": dialect_name, "heap_frozen": freeze, "schemas": len(files), "compiled": len(xs), "refused": len(refused), "lazy": cache.stats.lazy_compiles,
            "p50_s": quantile(xs, 0.5), "p99_s": quantile(xs, 0.99), "p999_s": quantile(xs, 0.999), "max_s": max(xs, default=0.0),
            "slowest": slowest, "times": times, "refusals": refused}


def measure_large(n: int, dialect_name: str = "kimi_k2", seed: int = 0, progress: bool = True, freeze: bool = True) -> dict:
    """Compile ``n`` generated large schemas (one tool each, a new request each) as the server
    does (`GrammarCache.compile`: llguidance's lazy masks from `LAZY_FROM_CHARS` of grammar text,
    xgrammar below and where the translation refuses), then the same grammar text with xgrammar
    alone, and llguidance's compile of the schema itself (not our language: for scale); grammar
    size, the extra-key trie rules, and the masks of a random walk on the served grammar."""
    from constrained.grammar import GrammarOptions
    from constrained.lazy import LazyGrammar
    from constrained.types import Tool

    from .large_schemas import generate

    d, tok, cache = started(dialect_name, freeze)
    ll_compile = _llguidance_compiler(cache.llguidance_tokenizer)
    rows = []
    for i, (name, schema) in enumerate(generate(n, seed)):
        row: dict = {"schema": name, "schema_chars": len(json.dumps(schema))}
        options = GrammarOptions(tool_choice="required")
        tools = [Tool("t", schema)]
        try:
            t0 = time.perf_counter()
            ebnf = cache.ebnf(d, tools, options)
            t1 = time.perf_counter()
            served = cache.compile(d, tools, options, ebnf=ebnf).grammar
            t2 = time.perf_counter()
            lazy = isinstance(served, LazyGrammar)
            if lazy:  # the same grammar by xgrammar (served by it, it is that already)
                cache.compile(d, tools, options, ebnf=ebnf, lazy=False)
            t3 = time.perf_counter()
            row.update(served_s=t2 - t0, ebnf_s=t1 - t0, route="llguidance" if lazy else "xgrammar",
                       xgrammar_s=(t1 - t0) + (t3 - t2) if lazy else t2 - t0, ebnf_chars=len(ebnf), rules=ebnf.count(" ::= "),
                       extra_key_trie_rules=sum(1 for line in ebnf.splitlines() if "_addl_key" in line.split(" ::= ")[0]),
                       guarded_key_rules=sum(1 for line in ebnf.splitlines() if "keyx_" in line.split(" ::= ")[0]))
            if isinstance(served, LazyGrammar):
                row.update(_mask_walk(served, seed + i, len(tok)))
        except Exception as err:  # noqa: BLE001 - a refusal is a result here
            row["ours_error"] = f"{type(err).__name__}: {str(err)[:160]}"
        if ll_compile is not None:
            row.update(ll_compile(schema))
        rows.append(row)
        if progress:
            print(f"{i + 1}/{n} {name}: served {row.get('served_s', float('nan')):.3f} s ({row.get('route')}), "
                  f"xgrammar {row.get('xgrammar_s', float('nan')):.3f} s", file=sys.stderr, flush=True)
    served_s = [r["served_s"] for r in rows if "served_s" in r]
    xgr_s = [r["xgrammar_s"] for r in rows if "xgrammar_s" in r]
    ll = [r["llguidance_s"] for r in rows if "llguidance_s" in r]
    return {"dialect": dialect_name, "schemas": n, "seed": seed, "heap_frozen": freeze, "rows": rows,
            "served_p50_s": quantile(served_s, 0.5), "served_p99_s": quantile(served_s, 0.99), "served_max_s": max(served_s, default=float("nan")),
            "xgrammar_p50_s": quantile(xgr_s, 0.5), "xgrammar_p99_s": quantile(xgr_s, 0.99), "xgrammar_max_s": max(xgr_s, default=float("nan")),
            "lazy_served": sum(1 for r in rows if r.get("route") == "llguidance"),
            "llguidance_p50_s": quantile(ll, 0.5), "llguidance_p99_s": quantile(ll, 0.99), "llguidance_accepted": len(ll)}


def _mask_walk(grammar, seed: int, vocab: int, steps: int = 40) -> dict:
    """µs per mask over a random walk through a grammar llguidance serves (its masks are
    computed per token)."""
    import random

    import numpy as np
    import xgrammar as xgr

    from constrained.guards import matcher as grammar_matcher

    m = grammar_matcher(grammar)
    bitmask = xgr.allocate_token_bitmask(1, grammar.vocab_size)
    rng, masks = random.Random(seed), []
    for _ in range(steps):
        t = time.perf_counter()
        m.fill_next_token_bitmask(bitmask, 0)
        masks.append(time.perf_counter() - t)
        allowed = np.flatnonzero(np.unpackbits(bitmask[0].numpy().view(np.uint8), bitorder="little")[:vocab])
        if not len(allowed) or m.is_terminated():
            break
        m.accept_token(int(rng.choice(allowed)))
    return {"mask_us_p50": 1e6 * quantile(masks, 0.5), "mask_us_max": 1e6 * max(masks)}


def _llguidance_compiler(ll_tok):
    """A function schema -> {llguidance_s} or {llguidance_error}: llguidance's own compile of the
    schema (not our language: for scale); None without llguidance."""
    if ll_tok is None:
        return None
    import llguidance

    def compile_(schema: dict) -> dict:
        t0 = time.perf_counter()
        matcher = llguidance.LLMatcher(ll_tok, llguidance.LLMatcher.grammar_from_json_schema(schema))
        elapsed = time.perf_counter() - t0
        if matcher.is_error():
            return {"llguidance_error": matcher.get_error()[:160]}
        return {"llguidance_s": elapsed}

    return compile_


def format_large(result: dict) -> str:
    lines = ["| schema | JSON chars | grammar chars | served, s | route | of which grammar text, s | xgrammar alone, s | grammar rules "
             "| guarded key rules | lazy masks p50 / max, µs | llguidance's own compile, s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        if "served_s" not in r:
            lines.append(f"| {r['schema']} | {r['schema_chars']:,} | {r.get('ours_error', '')} |  |  |  |  |  |  |  |  |")
            continue
        ll = f"{r['llguidance_s']:.4f}" if "llguidance_s" in r else r.get("llguidance_error", "n/a")
        masks = f"{r['mask_us_p50']:.0f} / {r['mask_us_max']:.0f}" if "mask_us_p50" in r else ""
        lines.append(f"| {r['schema']} | {r['schema_chars']:,} | {r['ebnf_chars']:,} | {r['served_s']:.3f} | {r['route']} | {r['ebnf_s']:.3f} "
                     f"| {r['xgrammar_s']:.3f} | {r['rules']} | {r['guarded_key_rules']} | {masks} | {ll} |")
    lines.append(f"\nserved (as the server compiles: {result['lazy_served']} of {result['schemas']} by llguidance): "
                 f"p50 {result['served_p50_s']:.3f} s, p99 {result['served_p99_s']:.3f} s, max {result['served_max_s']:.3f} s; "
                 f"xgrammar alone p50 {result['xgrammar_p50_s']:.3f} s, p99 {result['xgrammar_p99_s']:.3f} s, max {result['xgrammar_max_s']:.3f} s; "
                 f"llguidance's own compile p50 {result['llguidance_p50_s']:.4f} s, p99 {result['llguidance_p99_s']:.4f} s "
                 f"({result['llguidance_accepted']} of {result['schemas']} accepted)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", nargs="?")
    p.add_argument("--large", type=int, metavar="N", help="measure N generated large schemas instead of a folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dialect", default="kimi_k2")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default=None, help="write every time to this JSON file")
    p.add_argument("--no-freeze", action="store_true", help="leave start-up's objects to the garbage collector (the server freezes them)")
    args = p.parse_args(argv)
    if args.large:
        large = measure_large(args.large, args.dialect, args.seed, freeze=not args.no_freeze)
        if args.out:
            Path(args.out).write_text(json.dumps(large, indent=1) + "\n", encoding="utf-8")
        print(format_large(large))
        return 0
    if not args.dir:
        p.error("give a folder of schemas, or --large N")
    result = measure(args.dir, args.dialect, args.limit, freeze=not args.no_freeze)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"{result['compiled']} compiled ({result['lazy']} served by llguidance), {result['refused']} refused; seconds p50 {result['p50_s']:.4f}, p99 {result['p99_s']:.3f}, "
          f"p99.9 {result['p999_s']:.3f}, max {result['max_s']:.3f}")
    for name, s in result["slowest"]:
        print(f"  {s:8.3f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
