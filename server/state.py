"""The state behind one app: the served model, its grammar cache, the engine, the counters."""

from __future__ import annotations

import time
from dataclasses import dataclass

from constrained.compiler import eos_token_ids, grammar_cache

from .engine import Engine, EngineConfig
from .loader import Served
from .metrics import Metrics


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




class ServerState:
    """The model, its grammar cache, the engine and the counters behind one app."""

    def __init__(self, served: Served, engine_config: EngineConfig | None = None, config: ServerConfig | None = None):
        self.served = served
        self.config = config or ServerConfig()
        self.tokenizer = served.tokenizer
        self.dialect = served.dialect
        self.cache = grammar_cache(served.tokenizer, served.vocab_size)
        self.stop_ids = eos_token_ids(served.tokenizer, served.model)
        self.hidden_ids = set(self.stop_ids) | ({served.tokenizer.pad_token_id} if served.tokenizer.pad_token_id is not None else set())
        self.engine = Engine(
            served.model, served.tokenizer, vocab_size=served.vocab_size, stop_token_ids=self.stop_ids,
            max_context=served.max_context, config=engine_config,
        ).start()
        self.metrics = Metrics()
        self.created = int(time.time())
        self.names = (served.name, *self.config.aliases)
        self._token_text: dict[int, str] = {}
        # warm the compiler (TokenizerInfo is built above): the first request compiles in ms, not tens of ms
        self.cache.warm(self.dialect)

    def close(self) -> None:
        self.engine.shutdown()

    def token_text(self, token_id: int) -> str:
        s = self._token_text.get(token_id)
        if s is None:
            s = self.tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            self._token_text[token_id] = s
        return s


def build_state(model: str | None = None, dialect: str | None = "auto", *, engine_config: EngineConfig | None = None,
                config: ServerConfig | None = None, served_name: str | None = None, device: str = "auto") -> ServerState:
    from .loader import load

    return ServerState(load(model, dialect, served_name=served_name, device=device), engine_config, config)
