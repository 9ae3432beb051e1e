"""Run the real server (uvicorn on 127.0.0.1) in a background thread, for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from constrained.grammars import get_dialect


class BackgroundServer:
    """`with BackgroundServer(app) as base_url:` serves `app` on a free 127.0.0.1 port."""

    def __init__(self, app: Any, host: str = "127.0.0.1"):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 30.0) -> "BackgroundServer":
        self.thread.start()
        deadline = time.time() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def __enter__(self) -> str:
        self.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.stop()


def _single(tokenizer: Any, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False) if text else []
    return ids[0] if len(ids) == 1 else None


def demo_bias(tokenizer: Any, dialect: str, *, quote: float = 12.0, close: float = 6.0, eos: float = 6.0, section_end: float = 4.0) -> dict[int, float]:
    """A logits bias that makes the random demo model finish what it opens (the idea of
    tests/helpers.py `Nudge`): a closing quote above all (the grammar lets almost any token into a
    JSON string), then other closing characters and EOS. Applied BEFORE the grammar mask, so the
    grammar alone still decides what is allowed. Between calls, ending the section is favoured a
    little over opening another call."""
    d = get_dialect(dialect)
    bias: dict[int, float] = {}
    for s in ["}", "]", ")", ",", "0", "1", "7", "true", "false", "null", "True", "False", "None"]:
        if (t := _single(tokenizer, s)) is not None:
            bias[t] = close
    if (t := _single(tokenizer, '"')) is not None:
        bias[t] = quote
    if (t := _single(tokenizer, "'")) is not None and d.arguments == "python":
        bias[t] = quote
    if d.section_end and (t := _single(tokenizer, d.section_end.strip())) is not None:
        bias[t] = section_end
    if d.reasoning and (t := _single(tokenizer, d.reasoning[0])) is not None:
        bias[t] = -30.0  # never open a think block: the random model would ramble until max_tokens
    bias[tokenizer.eos_token_id] = eos
    return bias


def demo_first_token_bias(tokenizer: Any, dialect: str, *, trigger: float = 36.0, eos: float | None = 30.0) -> dict[int, float]:
    """First step only: open the tool section or stop (eos=None: always open it). With
    `demo_bias` (EOS +6 at every step) the defaults put the trigger and EOS level."""
    d = get_dialect(dialect)
    bias = {}
    if (t := _single(tokenizer, d.trigger)) is not None:
        bias[t] = trigger
    if eos is not None:
        bias[tokenizer.eos_token_id] = eos
    return bias


_SERVED: dict = {}


def demo_served(dialect: str):
    """The demo model for `dialect`, loaded once per process (tests share it between servers)."""
    from .loader import load

    if dialect not in _SERVED:
        _SERVED[dialect] = load(None, dialect, device="cpu")
    return _SERVED[dialect]


class DemoServer:
    """A real server over the demo model: `.url` (base, without /v1), `.state`, `.close()`."""

    def __init__(self, dialect: str, *, bias: dict | None = None, first_token_bias: dict | None = None, engine_config=None, config=None):
        from .app import ServerState, create_app
        from .engine import EngineConfig

        served = demo_served(dialect)
        if engine_config is None:
            engine_config = EngineConfig(default_seed=0)
        if engine_config.torch_threads is None:
            engine_config.torch_threads = 1  # the demo model gains nothing from more on a shared CPU
        if bias is None:
            bias = demo_bias(served.tokenizer, dialect)
        engine_config.logits_bias = bias or None
        engine_config.first_token_bias = first_token_bias or None
        self.state = ServerState(served, engine_config, config)
        self.server = BackgroundServer(create_app(self.state)).start()
        self.url = self.server.url
        self.model = self.state.names[0]

    def close(self) -> None:
        self.server.stop()
        self.state.close()
