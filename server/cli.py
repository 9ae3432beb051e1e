"""`constrained serve`: the OpenAI-compatible server (registered by `constrained.cli`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from constrained.errors import CommandError
from constrained.schema import ADDITIONAL_PROPERTIES
from constrained.types import BUDGET_CALLS, GRAMMAR_CACHE_BYTES, LAZY_FROM_CHARS

from .config import ServerConfig


def _serve(args: argparse.Namespace) -> int:
    if args.engine == "vllm":
        from constrained.integrations.vllm.launch import serve_vllm

        return serve_vllm(args, {k: args.serve_parser.get_default(k) for k in vars(args)})
    if args.vllm_args or args.vllm_python or args.print_command:
        print("error: arguments after --, --vllm-python and --print-command are for --engine vllm", file=sys.stderr)
        return 2
    import uvicorn

    from .app import build_state, create_app
    from .engine import EngineConfig
    from .loader import LoadError
    from .memory import freeze_start_up_heap, return_freed_blocks

    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.max_batch < 1 or args.max_queue < 1:
        args.parser.error("--max-batch and --max-queue must be >= 1")
    if args.compile_timeout <= 0 or args.workers < 1:
        args.parser.error("--compile-timeout must be > 0 and --workers >= 1")
    if args.grammar_cache_mb is not None and args.grammar_cache_mb <= 0:
        args.parser.error("--grammar-cache-mb must be > 0")
    if args.demo_nudge and args.model:
        args.parser.error("--demo-nudge is for the built-in demo model only")
    if args.demo_nudge:
        args.demo_model = "random"  # the nudge is what the random model needs to finish its calls
    return_freed_blocks()  # before the model loads: every large block from here on
    bias = first = None
    if args.demo_nudge:
        from constrained import demo

        from .loader import resolve_dialect

        try:
            d = resolve_dialect(args.dialect)
        except LoadError as err:
            raise CommandError(str(err)) from None
        bias, first = demo.server_nudge(demo.load_tokenizer(d), d)
    try:
        state = build_state(
            args.model, args.dialect, served_name=args.served_model_name, device=args.device, demo_model=args.demo_model,
            engine_config=EngineConfig(max_batch=args.max_batch, max_queue=args.max_queue, continuous=not args.no_continuous, default_seed=args.seed, jump_forward=args.jump_forward,
                                       torch_threads=args.threads if args.threads is not None else (None if args.model else 1),
                                       logits_bias=bias, first_token_bias=first),
            config=ServerConfig(api_key=args.api_key or os.environ.get("CONSTRAINED_API_KEY") or None,
                                max_body_bytes=int(args.max_body_mb * 1024 * 1024), default_max_tokens=args.default_max_tokens,
                                additional_properties=args.additional_properties, budget_calls=args.budget_calls,
                                compile_timeout=args.compile_timeout, workers=args.workers, lazy_from_chars=args.lazy_from,
                                grammar_cache_mb=args.grammar_cache_mb),
        )
    except LoadError as err:
        raise CommandError(str(err)) from None
    app = create_app(state)
    freeze_start_up_heap()  # the model, tokenizer and warmed compiler: never walked by the collector again
    print(f"constrained: serving {state.names[0]!r} (dialect {state.dialect.name}) on http://{args.host}:{args.port}/v1", file=sys.stderr, flush=True)
    print(f"constrained: dialect {state.dialect.name}: {state.served.dialect_reason}", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    finally:
        state.close()
    return 0


def add_serve_command(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="run the OpenAI-compatible server (chat completions with constrained tool calls)")
    p.add_argument("--model", help="a local Hugging Face checkpoint (default: the built-in demo model)")
    p.add_argument("--dialect", default="auto", help="a dialect name (`constrained dialects` lists them), or auto: detect from the checkpoint's chat template (the demo model: kimi_k2)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1 (or set CONSTRAINED_API_KEY)")
    p.add_argument("--max-batch", type=int, default=16, help="rows decoded together (default 16)")
    p.add_argument("--max-queue", type=int, default=256, help="requests allowed to wait; beyond it: 429 (default 256)")
    p.add_argument("--served-model-name", help="the model id clients send (default: the path, or constrained-demo-DIALECT)")
    p.add_argument("--default-max-tokens", type=int, default=1024, help="max_tokens when a chat request sets none (default 1024)")
    p.add_argument("--max-body-mb", type=float, default=4.0, help="request body limit in MB; beyond it: 413 (default 4)")
    p.add_argument("--seed", type=int, default=None, help="derive a seed from this and the prompt for requests without one (deterministic server)")
    p.add_argument("--no-continuous", action="store_true", help="admit new requests only when the running batch drains")
    p.add_argument("--additional-properties", choices=ADDITIONAL_PROPERTIES, default="forbid",
                   help="tool arguments: forbid properties the schema does not declare (default), or allow them where JSON Schema does")
    p.add_argument("--budget-calls", choices=BUDGET_CALLS, default="flag",
                   help="calls that max_tokens closed early (complete and valid, maybe cut short): return them flagged in "
                        "the `constrained.truncated` field (default), or drop them (a stream then sends each call once it is complete)")
    p.add_argument("--compile-timeout", type=float, default=ServerConfig.compile_timeout, metavar="SECONDS",
                   help="how long a request waits for its grammar to compile; beyond it the request gets a 503 naming the tool and the "
                        "limit, and the compile goes on and is cached for the next one (default %(default)s: on 2 CPU cores the "
                        "request compile times of 3,899 real-world schemas reach 0.3 s, of 40 generated large ones 0.8-1.5 s)")
    p.add_argument("--lazy-from", type=int, default=None, metavar="CHARS",
                   help=f"grammars whose text reaches this many characters (large schemas) are served by llguidance, which computes "
                        f"each token mask when it is needed, instead of xgrammar, which computes them all before the first token; "
                        f"0: every grammar, -1: none (default {LAZY_FROM_CHARS:,})")
    p.add_argument("--grammar-cache-mb", type=float, default=None, metavar="MB",
                   help=f"memory the cached compiled grammars may hold in all; the least recently used leave beyond it (default "
                        f"{GRAMMAR_CACHE_BYTES // 2**20:,}: a small tool set's grammar holds under 1 MB, a 300 KB schema's 10-70 MB)")
    p.add_argument("--workers", type=int, default=ServerConfig.workers, help="threads that prepare requests and parse results (default %(default)s)")
    p.add_argument("--jump-forward", action=argparse.BooleanOptionalAction, default=True,
                   help="feed text the grammar forces (markers, names, JSON keys) in one forward pass instead of sampling it token by token "
                        "(default on; --no-jump-forward samples every token)")
    p.add_argument("--demo-model", choices=("trained", "random"), default="trained",
                   help="without --model: the built-in trained demo model (default), or the random one (the harshest user of a grammar)")
    p.add_argument("--demo-nudge", action="store_true",
                   help="the random demo model (implies --demo-model random): bias it toward closing quotes/brackets and toward calling or stopping at once, so that the random model finishes its calls (the grammar still decides what is allowed)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 for the demo model, else torch's default)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--engine", choices=("builtin", "vllm"), default="builtin",
                   help="builtin: this server; vllm: run `vllm serve` with the constrained_<dialect> parsers and these options (vLLM's own after --)")
    p.add_argument("--vllm-python", help="--engine vllm: the interpreter of an environment with vLLM and this project (default: this one if it has vllm, else .venv-vllm)")
    p.add_argument("--print-command", action="store_true", help="--engine vllm: print the vllm serve command instead of running it")
    p.add_argument("vllm_args", nargs=argparse.REMAINDER, help="--engine vllm: -- then vLLM options (--tensor-parallel-size 4, ...)")
    p.set_defaults(func=_serve, parser=p, serve_parser=p)
    return p
