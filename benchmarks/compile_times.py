"""Request compile times over a MaskBench-style corpus, as the server pays them: each schema is one
tool of a new request, compiled by the server's grammar cache (warmed up at start, as `constrained
serve` does) for one dialect on the demo tokenizer (128K vocabulary). The figures choose the
server's `--compile-timeout` default (its p99.9, rounded up).

    python -m constrained.benchmarks.compile_times ../shared/data/maskbench [--dialect kimi_k2] [--out times.json]
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("--dialect", default="kimi_k2")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default=None, help="write every time to this JSON file")
    args = p.parse_args(argv)
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
