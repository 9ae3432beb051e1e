"""Run the real server (uvicorn on 127.0.0.1) in a background thread, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from constrained import demo


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

    def start(self, timeout: float = 30.0) -> BackgroundServer:
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


_SERVED: dict = {}


def demo_served(dialect: str, demo_model: str = "random"):
    """A demo model for `dialect` (random by default: the harshest user, for the guarantee checks),
    loaded once per process (tests share it between servers)."""
    from .loader import load

    if (dialect, demo_model) not in _SERVED:
        _SERVED[dialect, demo_model] = load(None, dialect, device="cpu", demo_model=demo_model)
    return _SERVED[dialect, demo_model]


class DemoServer:
    """A real server over the demo model: `.url` (base, without /v1), `.state`, `.close()`."""

    def __init__(self, dialect: str, *, demo_model: str = "random", bias: dict | None = None, first_token_bias: dict | None = None,
                 engine_config=None, config=None):
        from .app import ServerState, create_app
        from .engine import EngineConfig

        served = demo_served(dialect, demo_model)
        if engine_config is None:
            engine_config = EngineConfig(default_seed=0)
        if engine_config.torch_threads is None:
            engine_config.torch_threads = 1  # the demo model gains nothing from more on a shared CPU
        if bias is None:  # the random model needs the nudge to finish its calls; the trained one none
            bias = demo.server_nudge(served.tokenizer, served.dialect)[0] if demo_model == "random" else {}
        engine_config.logits_bias = bias or None
        engine_config.first_token_bias = first_token_bias or None
        self.state = ServerState(served, engine_config, config)
        self.server = BackgroundServer(create_app(self.state)).start()
        self.url = self.server.url
        self.model = self.state.names[0]

    def close(self) -> None:
        self.server.stop()
        self.state.close()


@contextlib.contextmanager
def server_process(*args: str, stderr: Any = subprocess.DEVNULL) -> Iterator[tuple[subprocess.Popen, str]]:
    """`constrained serve ARGS` in its own process on a free 127.0.0.1 port, once /health answers:
    (process, base URL). A stuck server cannot stall its client, and its memory is its own."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "constrained.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the server did not start: {' '.join(cmd)}")
            time.sleep(0.5)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
