"""The state behind one app: the served model, its grammar cache, the engine, the counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from constrained.compiler import GrammarCache, eos_token_ids, grammar_cache
from constrained.tokenizer import TokenText, serial
from constrained.types import GRAMMAR_CACHE_BYTES, LAZY_FROM_CHARS

from .compiles import Compiles
from .config import ServerConfig
from .engine import Engine, EngineConfig
from .loader import Served
from .metrics import Metrics

T = TypeVar("T")


class ServerState:
    """The model, its grammar cache, the engine and the counters behind one app."""

    def __init__(self, served: Served, engine_config: EngineConfig | None = None, config: ServerConfig | None = None):
        self.served = served
        self.config = config or ServerConfig()
        # request workers, the engine and the budget's closer all encode: one user at a time
        self.tokenizer = serial(served.tokenizer)
        self.dialect = served.dialect
        lazy_from, cache_mb = self.config.lazy_from_chars, self.config.grammar_cache_mb
        if lazy_from is None and cache_mb is None:
            self.cache = grammar_cache(served.tokenizer, served.vocab_size)
        else:  # a route or bound of its own: a cache of its own, not the process's shared one
            self.cache = GrammarCache(
                served.tokenizer, served.vocab_size,
                lazy_from_chars=LAZY_FROM_CHARS if lazy_from is None else (None if lazy_from < 0 else lazy_from),
                max_bytes=GRAMMAR_CACHE_BYTES if cache_mb is None else int(cache_mb * 1024 * 1024),
            )
        # generated text, every step of every stream: from the bytes of each token, no tokenizer
        self.text = TokenText(served.tokenizer, self.cache.decoded_vocab)
        self.stop_ids = eos_token_ids(served.tokenizer, served.model)
        self.hidden_ids = set(self.stop_ids) | ({served.tokenizer.pad_token_id} if served.tokenizer.pad_token_id is not None else set())
        self.engine = Engine(
            served.model, self.tokenizer, vocab_size=served.vocab_size, stop_token_ids=self.stop_ids,
            max_context=served.max_context, config=engine_config,
        ).start()
        self.metrics = Metrics()
        self.created = int(time.time())
        self.names = tuple(dict.fromkeys((served.name, *served.aliases, *self.config.aliases)))
        # CPU work of a request (prompt, grammar text, parse, validation) runs here, not on the event loop
        self.workers = ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="constrained-worker")
        self.compiles = Compiles(self.config.compile_threads)
        # warm the compiler (TokenizerInfo is built above): the first request compiles in ms, not tens of ms;
        # and make the budget's closer now rather than in the first request
        self.cache.warm(self.dialect)
        self.cache.closer(self.dialect, self.stop_ids)

    def close(self) -> None:
        self.engine.shutdown()
        self.workers.shutdown(wait=False, cancel_futures=True)
        self.compiles.close()

    def token_text(self, token_id: int) -> str:
        return self.text.text(token_id)

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on a request worker: the event loop stays free for every other stream."""
        return await asyncio.get_running_loop().run_in_executor(self.workers, fn, *args)


def build_state(model: str | None = None, dialect: str | None = "auto", *, engine_config: EngineConfig | None = None,
                config: ServerConfig | None = None, served_name: str | None = None, device: str = "auto", demo_model: str = "trained") -> ServerState:
    from .loader import load

    return ServerState(load(model, dialect, served_name=served_name, device=device, demo_model=demo_model), engine_config, config)
