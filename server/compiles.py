"""Grammar compiles off the request path, with a deadline per request.

A grammar not in the cache is compiled on a pool of its own (`threads`), so that a slow compile
(tens of seconds for some real-world schemas on a 128K vocabulary) never holds up requests whose
grammar is cached, nor the workers that prepare other requests. One compile per distinct grammar
runs at a time: a request for a grammar already being compiled waits for that compile. A request
waits at most `timeout` seconds (`--compile-timeout`), then gets a 503 naming the tool and the
limit; the compile goes on and its grammar is cached, so a retry finds it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from constrained.compiler import CompileResult

from .protocol import ApiError


class Compiles:
    def __init__(self, threads: int = 2):
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="constrained-compile")
        self._inflight: dict[bytes, Future[CompileResult]] = {}
        self._lock = threading.Lock()
        self.timeouts = 0  # requests answered 503 because their compile ran past the deadline

    def pending(self, key: bytes) -> Future[CompileResult] | None:
        with self._lock:
            return self._inflight.get(key)

    def submit(self, key: bytes, compile: Callable[[], CompileResult]) -> Future[CompileResult]:
        """The compile of `key`: the one in flight, else `compile` started on the pool."""
        with self._lock:
            future = self._inflight.get(key)
            if future is not None:
                return future
            future = self._inflight[key] = self.pool.submit(compile)
        # outside the lock: a compile that is already done (a fast one, on a pool thread that ran
        # before this line) calls back at once, in this thread, and the callback takes the lock
        future.add_done_callback(lambda done: self._done(key, done))
        return future

    def _done(self, key: bytes, future: Future[CompileResult]) -> None:
        with self._lock:
            if self._inflight.get(key) is future:
                del self._inflight[key]

    async def wait(self, future: Future[CompileResult], timeout: float, what: str) -> CompileResult:
        """The compiled grammar, or ApiError 503 after `timeout` seconds (the compile goes on)."""
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
        except asyncio.TimeoutError:
            self.timeouts += 1
            raise ApiError(
                503, f"compiling the grammar for {what} takes longer than the {timeout:g} s limit (--compile-timeout); "
                     "it goes on in the background and is cached: retry the request shortly",
                type="server_error", code="compile_timeout", headers={"Retry-After": "2"}) from None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
