"""The server's settings (light: `constrained --help` reads their defaults without loading torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServerConfig:
    api_key: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    default_max_tokens: int = 1024
    aliases: tuple[str, ...] = ()
    # tool arguments: "forbid" undeclared properties, or follow the "schema" (constrained.schema)
    additional_properties: str = "forbid"
    # calls a token budget closed early (constrained.budget): "flag" them, or "drop" them
    budget_calls: str = "flag"
    # seconds a request waits for its grammar to compile (then 503; the compile goes on and is
    # cached). The request compile time of the 3,899 maskbench schemas on 2 CPU cores (2026-12-05,
    # benchmarks/compile_times.py): p50 6.8 ms, p99 35 ms, p99.9 0.19 s, max 0.31 s; 40 generated
    # large schemas: p99 0.82-1.14 s in four runs (1.5 s on a loaded host). Kept at 5 s: headroom
    # for a loaded machine and larger schemas.
    compile_timeout: float = 5.0
    # threads that prepare requests (prompt, tokens, grammar text) and read results (parse, validate)
    workers: int = 4
    # threads that compile grammars not in the cache
    compile_threads: int = 2
    # grammar text from which llguidance serves a grammar with lazy masks (constrained.lazy); None:
    # the library's default (constrained.types.LAZY_FROM_CHARS), -1: never
    lazy_from_chars: int | None = None
    # MiB the cached compiled grammars may hold in all; None: the library's default
    # (constrained.types.GRAMMAR_CACHE_BYTES)
    grammar_cache_mb: float | None = None
