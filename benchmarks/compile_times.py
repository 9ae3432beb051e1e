"""Request compile times over a MaskBench-style corpus, as the server pays them: each schema is one
tool of a new request, compiled by the server's grammar cache (warmed up at start, as `constrained
serve` does) for one dialect on the demo tokenizer (128K vocabulary). The figures choose the
server's `--compile-timeout` default (its p99.9, rounded up).

    python -m constrained.benchmarks.compile_times ../shared/data/maskbench [--dialect kimi_k2] [--out times.json]

With ``--large N`` it measures N generated large schemas instead (`benchmarks.large_schemas`), each
compiled the same way, side by side with llguidance's compile of the same schema, and counts the
rules xgrammar writes to keep open objects' extra keys apart from their declared names (one per
node of the trie of those names: the cause of the tail found so far) and the guarded key rules
that replace them in large objects (`constrained.keys`). It also measures the lazy route for the
same grammar: our EBNF translated to llguidance's Lark (`constrained.lark`), llguidance's matcher
built from it, and the masks of a random walk through it (they are computed per token there).

    python -m constrained.benchmarks.compile_times --large 10 [--out large.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def measure(folder: str, dialect_name: str = "kimi_k2", limit: int | None = None, progress: bool = True) -> dict:
    from constrained import demo
    from constrained import dialect as registry
    from constrained.compiler import grammar_cache
    from constrained.errors import ToolSpecError, UnsupportedSchemaError
    from constrained.grammar import GrammarOptions
    from constrained.types import Tool

    d = registry.get(dialect_name)
    tok = demo.load_tokenizer(d)
    cache = grammar_cache(tok)
    cache.warm(d)
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
    return {"dialect": dialect_name, "schemas": len(files), "compiled": len(xs), "refused": len(refused),
            "p50_s": quantile(xs, 0.5), "p99_s": quantile(xs, 0.99), "p999_s": quantile(xs, 0.999), "max_s": max(xs, default=0.0),
            "slowest": slowest, "times": times, "refusals": refused}


def measure_large(n: int, dialect_name: str = "kimi_k2", seed: int = 0, progress: bool = True) -> dict:
    """Compile ``n`` generated large schemas (one tool each, a new request each), ours and
    llguidance's: seconds, grammar size, and the extra-key trie rules of each."""
    from constrained import demo
    from constrained import dialect as registry
    from constrained.compiler import grammar_cache
    from constrained.grammar import GrammarOptions
    from constrained.types import Tool

    from .large_schemas import generate

    d = registry.get(dialect_name)
    tok = demo.load_tokenizer(d)
    cache = grammar_cache(tok)
    cache.warm(d)
    ll_compile = _llguidance_compiler(tok)
    rows = []
    for i, (name, schema) in enumerate(generate(n, seed)):
        row: dict = {"schema": name, "schema_chars": len(json.dumps(schema))}
        options = GrammarOptions(tool_choice="required")
        try:
            t0 = time.perf_counter()
            ebnf = cache.ebnf(d, [Tool("t", schema)], options)
            t1 = time.perf_counter()
            cache.compile(d, [Tool("t", schema)], options, ebnf=ebnf)
            row.update(ours_s=time.perf_counter() - t0, ebnf_s=t1 - t0, rules=ebnf.count(" ::= "),
                       extra_key_trie_rules=sum(1 for line in ebnf.splitlines() if "_addl_key" in line.split(" ::= ")[0]),
                       guarded_key_rules=sum(1 for line in ebnf.splitlines() if "keyx_" in line.split(" ::= ")[0]))
        except Exception as err:  # noqa: BLE001 - a refusal is a result here
            row["ours_error"] = f"{type(err).__name__}: {str(err)[:160]}"
        if ll_compile is not None:
            row.update(ll_compile(schema))
            if "ebnf_s" in row:
                row.update(_lazy_route(tok, ebnf, seed + i))
        rows.append(row)
        if progress:
            print(f"{i + 1}/{n} {name}: ours {row.get('ours_s', float('nan')):.3f} s, llguidance {row.get('llguidance_s', float('nan')):.3f} s",
                  file=sys.stderr, flush=True)
    ours = [r["ours_s"] for r in rows if "ours_s" in r]
    ll = [r["llguidance_s"] for r in rows if "llguidance_s" in r]
    return {"dialect": dialect_name, "schemas": n, "seed": seed, "rows": rows,
            "ours_p50_s": quantile(ours, 0.5), "ours_p99_s": quantile(ours, 0.99), "ours_max_s": max(ours, default=float("nan")),
            "llguidance_p50_s": quantile(ll, 0.5), "llguidance_p99_s": quantile(ll, 0.99), "llguidance_accepted": len(ll)}


def _lazy_route(tok, ebnf: str, seed: int, steps: int = 40) -> dict:
    """Our grammar in llguidance: translation seconds, matcher seconds, mask µs over a random walk."""
    import random

    import llguidance
    import numpy as np

    from constrained import lark

    t0 = time.perf_counter()
    try:
        translated = lark.to_lark(ebnf)
    except lark.NotTranslatable as err:
        return {"lark_refused": str(err)[:120]}
    t1 = time.perf_counter()
    matcher = llguidance.LLMatcher(_ll_tokenizer(tok), llguidance.LLMatcher.grammar_from_lark(translated), log_level=0)
    t2 = time.perf_counter()
    if matcher.is_error():
        return {"lark_error": matcher.get_error()[:120]}
    rng, masks = random.Random(seed), []
    for _ in range(steps):
        t = time.perf_counter()
        words = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint32)
        masks.append(time.perf_counter() - t)
        allowed = np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little"))
        allowed = allowed[allowed < len(tok)]
        if not len(allowed) or matcher.is_stopped():
            break
        matcher.consume_token(int(rng.choice(allowed)))
    return {"lark_s": t1 - t0, "llguidance_ours_s": t2 - t1, "lazy_total_s": (t2 - t0),
            "ll_mask_us_p50": 1e6 * quantile(masks, 0.5), "ll_mask_us_max": 1e6 * max(masks)}


@functools.cache  # one per tokenizer: building it costs ~1 s on a 129K vocabulary
def _ll_tokenizer(tok):
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tok)


def _llguidance_compiler(tok):
    """A function schema -> {llguidance_s} or {llguidance_error}; None without llguidance."""
    try:
        import llguidance
        import llguidance.hf
    except ImportError:
        return None
    ll_tok = _ll_tokenizer(tok)

    def compile_(schema: dict) -> dict:
        t0 = time.perf_counter()
        matcher = llguidance.LLMatcher(ll_tok, llguidance.LLMatcher.grammar_from_json_schema(schema))
        elapsed = time.perf_counter() - t0
        if matcher.is_error():
            return {"llguidance_error": matcher.get_error()[:160]}
        return {"llguidance_s": elapsed}

    return compile_


def format_large(result: dict) -> str:
    lines = ["| schema | JSON chars | ours, s | of which grammar text, s | grammar rules | extra-key trie rules | guarded key rules "
             "| llguidance, s | ours in llguidance: translation + matcher, s | its masks p50 / max, µs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ours = f"{r['ours_s']:.3f}" if "ours_s" in r else r.get("ours_error", "")
        ll = f"{r['llguidance_s']:.4f}" if "llguidance_s" in r else r.get("llguidance_error", "n/a")
        lazy = (f"{r['lark_s']:.3f} + {r['llguidance_ours_s']:.3f}" if "lark_s" in r
                else r.get("lark_refused", r.get("lark_error", "n/a")))
        masks = f"{r['ll_mask_us_p50']:.0f} / {r['ll_mask_us_max']:.0f}" if "lark_s" in r else ""
        text = f"{r['ebnf_s']:.3f}" if "ebnf_s" in r else ""
        lines.append(f"| {r['schema']} | {r['schema_chars']:,} | {ours} | {text} | {r.get('rules', '')} | {r.get('extra_key_trie_rules', '')} "
                     f"| {r.get('guarded_key_rules', '')} | {ll} | {lazy} | {masks} |")
    lazy = [r["ebnf_s"] + r["lazy_total_s"] for r in result["rows"] if "lazy_total_s" in r]
    if lazy:
        lines.append(f"\nours in llguidance (grammar text + translation + matcher): p50 {quantile(lazy, 0.5):.3f} s, "
                     f"p99 {quantile(lazy, 0.99):.3f} s ({len(lazy)} of {result['schemas']} translated)")
    lines.append(f"\nours p50 {result['ours_p50_s']:.3f} s, p99 {result['ours_p99_s']:.3f} s, max {result['ours_max_s']:.3f} s; "
                 f"llguidance p50 {result['llguidance_p50_s']:.4f} s, p99 {result['llguidance_p99_s']:.4f} s "
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
    args = p.parse_args(argv)
    if args.large:
        large = measure_large(args.large, args.dialect, args.seed)
        if args.out:
            Path(args.out).write_text(json.dumps(large, indent=1) + "\n", encoding="utf-8")
        print(format_large(large))
        return 0
    if not args.dir:
        p.error("give a folder of schemas, or --large N")
    result = measure(args.dir, args.dialect, args.limit)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"{result['compiled']} compiled, {result['refused']} refused; seconds p50 {result['p50_s']:.4f}, p99 {result['p99_s']:.3f}, "
          f"p99.9 {result['p999_s']:.3f}, max {result['max_s']:.3f}")
    for name, s in result["slowest"]:
        print(f"  {s:8.3f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
